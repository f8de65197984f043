"""A job's secrets, derived with HMAC-SHA256 from the site's key and the job's name and number, and VNC's stored form."""

from __future__ import annotations

import hashlib
import hmac

#: lengths of the ``%RANDOMn%`` tokens (appdef-template README)
RANDOM_LENGTHS = (16, 32, 64, 128)


PASSWORD_LENGTH = 16


#: the secret variables an executor hands to the job (through its private secrets file)
PASSWORD_VARIABLE = "DSSR_NIMBIXPASSWD"


#: base64 of ``/etc/JARVICE/vncpasswd``: the password as VNC stores it (jarvice-desktop's ``-rfbauth``)
VNC_PASSWORD_VARIABLE = "DSSR_VNCPASSWD"


#: VNC's fixed DES key for stored passwords (the same in every VNC server and client)
_VNC_KEY = bytes([23, 82, 107, 6, 35, 78, 88, 7])


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"


def random_variable(length: int) -> str:
    """The secret variable carrying the job's ``%RANDOM<length>%`` value."""
    return f"DSSR_RANDOM{length}"


def vnc_password_file(password: str) -> bytes:
    """The 8 bytes of a VNC password file (``vncpasswd``): the password's first 8 characters,
    DES-encrypted with VNC's fixed key (each key byte bit-reversed, as VNC uses it)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    try:
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    except ImportError:  # cryptography < 43
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES  # type: ignore[no-redef,unused-ignore]  # cryptography < 43 only: unused where the newer one is installed
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in _VNC_KEY) * 3  # three equal keys: single DES
    encryptor = Cipher(TripleDES(key), modes.ECB()).encryptor()
    return encryptor.update(password.encode()[:8].ljust(8, b"\0")) + encryptor.finalize()


def _token(key: bytes, purpose: str, name: str, number: int, length: int, alphabet: str) -> str:
    """``length`` characters of ``alphabet``, derived from HMAC-SHA256(key, purpose/name/number).

    Bytes are drawn in counter mode; a byte is used only below the largest
    multiple of the alphabet's size, so that every character is equally likely.
    """
    limit = 256 - 256 % len(alphabet)
    out: list[str] = []
    counter = 0
    message = f"{purpose}\0{name}\0{number}".encode()
    while len(out) < length:
        block = hmac.new(key, message + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        out.extend(alphabet[b % len(alphabet)] for b in block if b < limit)
        counter += 1
    return "".join(out[:length])
