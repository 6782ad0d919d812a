"""MessageService: any message of any folder of an account, drafts or not.

Read a page of a folder, its threads, or one message, its RFC 5322 source or its attachments,
mark it read or unread, delete it.
Drafts are the draft service's: deleting a message of the Drafts folder deletes the draft, with
every copy a write may have left (see :meth:`mailbridge.drafts.DraftService.delete`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Literal

from mailbridge.attachments import AttachmentPart, list_parts, read
from mailbridge.config import AccountConfig
from mailbridge.drafts import DraftService
from mailbridge.errors import ImapNotFound, NotFound
from mailbridge.events import Event
from mailbridge.imap import ImapConnection
from mailbridge.imap.folders import ROLES
from mailbridge.listing import page
from mailbridge.model import DraftContent
from mailbridge.reading import fetch_whole, select_named
from mailbridge.replies import forwarding_headers
from mailbridge.threads import Thread, find_thread, list_threads
from mailbridge.views import Page, PagePosition, StoredMessage, has_flag

Removal = Literal["trash", "deleted"]


class MessageService:
    """The messages of the configured accounts' folders."""

    def __init__(self, drafts: DraftService) -> None:
        self.drafts = drafts
        self.store = drafts.store

    async def folder_named(self, account: AccountConfig, name: str) -> str:
        """The mailbox a caller means by ``name``: ``Drafts``, ``Sent``, ``Trash``, ``Junk`` and
        ``Archive`` (any case) mean the account's folder of that role (special-use, else a
        usual name, else ``[accounts.folders]``), whatever the server calls it
        (``[Gmail]/Drafts``, ``INBOX.Drafts``); any other name is taken as it is."""
        if name.lower() in ROLES:
            with contextlib.suppress(ImapNotFound):
                return await self.store.pool(account).folder(name.lower())
        return name

    async def holds_own_mail(self, account: AccountConfig, folder: str) -> bool:
        """True for the account's Drafts and Sent folders, where Bcc is the sender's own data
        (shown there, never elsewhere)."""
        pool = self.store.pool(account)
        for role in ("drafts", "sent"):
            try:
                if await pool.folder(role) == folder:
                    return True
            except ImapNotFound:
                continue
        return False

    async def answer_draft(self, account: AccountConfig, folder: str, uid: int,
                           make: Callable[[StoredMessage], DraftContent], *,
                           forward: bool, idempotency_key: str | None = None
                           ) -> tuple[StoredMessage, bool]:
        """A new draft answering the message ``uid`` (a reply or a forward): ``make`` builds it
        from the original, read whole (see :mod:`mailbridge.replies`). Stored as
        :meth:`DraftService.create` stores drafts; the original gets ``\\Answered`` or
        ``$Forwarded`` when the draft is sent (:mod:`mailbridge.sending`)."""
        original = await self.get(account, folder, uid)
        content = make(original)
        extra = forwarding_headers(original) if forward else ()
        return await self.drafts.create(account, content, idempotency_key=idempotency_key,
                                        extra_headers=extra)

    async def list_folder(self, account: AccountConfig, folder: str, limit: int,
                          after: PagePosition | None = None) -> Page:
        """A page of any folder's messages (not deleted), newest first."""
        return await page(self.store.pool(account), account, folder, ["UNDELETED"], limit, after)

    async def threads(self, account: AccountConfig, folder: str,
                      limit: int) -> tuple[list[Thread], int]:
        """The threads of the ``limit`` newest messages of a folder (see :mod:`mailbridge.threads`)
        and how many messages they hold."""
        async with self.store.pool(account).connection() as conn:
            return await list_threads(conn, account, folder, limit)

    async def thread(self, account: AccountConfig, folder: str, thread_id: str) -> Thread:
        """One thread, by its id or the Message-ID of one of its messages."""
        async with self.store.pool(account).connection() as conn:
            return await find_thread(conn, account, folder, thread_id)

    async def get(self, account: AccountConfig, folder: str, uid: int) -> StoredMessage:
        """Any message of any folder by UID, loaded whole; NotFound if absent."""
        async with self.store.pool(account).connection() as conn:
            await select_named(conn, account, folder)
            return await self._whole(conn, account, folder, uid)

    async def attachments(self, account: AccountConfig, folder: str,
                          uid: int) -> list[AttachmentPart]:
        """The attachments of a message, from its structure alone (no bytes read)."""
        async with self.store.pool(account).connection() as conn:
            return await list_parts(conn, account, folder, uid)

    def attachment_bytes(self, account: AccountConfig, folder: str,
                         attachment: AttachmentPart) -> AsyncIterator[bytes]:
        """The decoded bytes of one attachment, in pieces (see :func:`mailbridge.attachments.read`)."""
        return read(self.store.pool(account), account, folder, attachment)

    async def set_seen(self, account: AccountConfig, folder: str, uid: int,
                       seen: bool) -> StoredMessage:
        """Marks the message read (``\\Seen``) or unread; returns it as it is now."""
        async with self.store.pool(account).connection() as conn:
            await select_named(conn, account, folder)
            await self._whole(conn, account, folder, uid)  # NotFound first
            if seen:
                await self.store.add_flag(conn, [uid], "\\Seen")
            else:
                await conn.uid_store([uid], "-FLAGS.SILENT", ["\\Seen"])
            return await self._whole(conn, account, folder, uid)

    async def add_flag(self, account: AccountConfig, folder: str, uid: int, flag: str) -> None:
        """Sets ``flag`` (e.g. ``$Forwarded``) on the message, if it is still there."""
        async with self.store.pool(account).connection() as conn:
            await select_named(conn, account, folder)
            await self.store.add_flag(conn, [uid], flag)

    async def delete(self, account: AccountConfig, folder: str, uid: int) -> Removal:
        """Moves the message to Trash, or deletes it for good when the account has no Trash or
        it is in Trash already. A message of Drafts is a draft: it goes as the draft service
        deletes drafts (every copy; into Trash when the account says ``delete = "trash"``)."""
        pool = self.store.pool(account)
        folders = await pool.folders()
        if folder == folders.drafts:
            await self.drafts.delete(account, uid)
            return "trash" if account.delete == "trash" else "deleted"
        async with pool.connection() as conn:
            await select_named(conn, account, folder)
            message = await self._whole(conn, account, folder, uid)
            async with self.drafts.events.taking(account, folder, message.uidvalidity, [uid]):
                removal = await self._remove(conn, folder, uid, folders.trash)
        self.drafts.events.emit(Event("email.deleted", account, message))
        return removal

    async def _remove(self, conn: ImapConnection, folder: str, uid: int,
                      trash: str | None) -> Removal:
        """Moves the message ``uid`` of the selected ``folder`` to ``trash``, or removes it for
        good when there is none or it is in Trash already."""
        if trash is None or trash == folder:
            await self.store.remove(conn, [uid])
            return "deleted"
        try:
            if conn.has("MOVE"):
                await conn.uid_move([uid], trash)
            else:
                await conn.uid_copy([uid], trash)
                await self.store.remove(conn, [uid])
            return "trash"
        except ImapNotFound:  # a Trash that is configured but missing on the server
            await self.store.remove(conn, [uid])
            return "deleted"

    @staticmethod
    async def _whole(conn: ImapConnection, account: AccountConfig, folder: str,
                     uid: int) -> StoredMessage:
        message = await fetch_whole(conn, account, folder, uid)
        if message is None or has_flag(message.flags, "\\Deleted"):
            raise NotFound(f"no message {uid} in {folder!r} of {account.email}", field="uid")
        return message
