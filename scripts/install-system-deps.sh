#!/usr/bin/env bash
# Installs the Debian packages mailbridge's dev stack and tests need, when they are missing:
# Dovecot (IMAP + LMTP) for the private mail server, openssl for its test certificate,
# python3-venv where the system Python lacks venv/ensurepip, and the parts of Cyrus IMAP and
# Courier-IMAP that do not conflict with Dovecot (the tests run their imapd from the cyrus-imapd
# and courier-imap packages unpacked, never installed: installing either would remove
# dovecot-imapd; see
# tests/servers), and Chromium for the review page's browser tests; these two only with --test,
# as `make test` asks. Does nothing when all is there.
set -euo pipefail

missing=()
[ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/imap ] || missing+=(dovecot-imapd)
[ -x /usr/lib/dovecot/lmtp ] || missing+=(dovecot-lmtpd)
command -v openssl >/dev/null || missing+=(openssl)
if [ "${1:-}" = "--test" ]; then  # what only the test suite needs: the other IMAP servers
  [ -x /usr/lib/cyrus/bin/master ] || missing+=(cyrus-common)
  command -v cyradm >/dev/null || missing+=(cyrus-admin)
  command -v saslpasswd2 >/dev/null || missing+=(sasl2-bin)
  command -v dpkg-deb >/dev/null || missing+=(dpkg)
  [ -x /usr/sbin/couriertcpd ] || missing+=(courier-base)
  [ -x /usr/sbin/authdaemond ] || missing+=(courier-authdaemon courier-authlib)
  [ -x /usr/sbin/makeuserdb ] || missing+=(courier-authlib-userdb)
  # the review page's tests run in Debian's Chromium (driven by Playwright over its DevTools
  # protocol, so no chromedriver), with a font for its text and screenshot
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
fi
command -v make >/dev/null || missing+=(make)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then missing+=(python3-venv); fi

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "mailbridge needs these Debian packages: ${missing[*]}" >&2
  echo "install them as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
