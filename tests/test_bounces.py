"""Reading delivery status notifications (RFC 3464): the message that bounced and for whom."""

from __future__ import annotations

from mailbridge.bounces import read_bounce

STATUS = (b"Reporting-MTA: dns; mx.example.test\r\n\r\n"
          b"Final-Recipient: rfc822; gone@nowhere.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
          b"Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
          b"Final-Recipient: rfc822; later@nowhere.test\r\nAction: delayed\r\nStatus: 4.4.1\r\n")


def dsn(returned_type: bytes, returned: bytes, status: bytes = STATUS) -> bytes:
    return (b"From: MAILER-DAEMON@mx.example.test\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/report; report-type="delivery-status"; boundary="b"\r\n'
            b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n"
            b"--b\r\nContent-Type: message/delivery-status\r\n\r\n" + status +
            b"\r\n--b\r\nContent-Type: " + returned_type + b"\r\n\r\n" + returned +
            b"\r\n--b--\r\n")


def test_a_postfix_dsn_with_the_returned_headers() -> None:
    bounce = read_bounce(dsn(b"text/rfc822-headers",
                             b"From: a@example.test\r\nMessage-ID: <m1@example.test>\r\n"))
    assert bounce is not None and bounce.message_id == "m1@example.test"
    [failed] = bounce.recipients  # the delayed one is no bounce
    assert (failed.recipient, failed.status, failed.diagnostic) == (
        "gone@nowhere.test", "5.1.1", "smtp; 550 5.1.1 User unknown")


def test_a_dsn_with_the_whole_message_returned() -> None:
    bounce = read_bounce(dsn(b"message/rfc822",
                             b"Message-ID: <m2@example.test>\r\nSubject: Hi\r\n\r\nBody\r\n"))
    assert bounce is not None and bounce.message_id == "m2@example.test"


def test_what_is_no_bounce() -> None:
    assert read_bounce(b"Subject: Hello\r\n\r\nplain mail\r\n") is None
    delayed = STATUS.split(b"\r\n\r\n")[0] + b"\r\n\r\n" + STATUS.split(b"\r\n\r\n")[2]
    assert read_bounce(dsn(b"text/rfc822-headers", b"Message-ID: <m3@x>\r\n", delayed)) is None
    assert read_bounce(dsn(b"text/rfc822-headers", b"Subject: no id\r\n")) is None
