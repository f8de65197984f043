"""The one mapping from an exception to the HTTP answer ``{"error": "..."}`` and its log line.

Flask's error handlers (:mod:`.app`) and :mod:`.fastpath` both answer through
:func:`error_answer`, so an error is worded, logged and given its status in
one place whichever path served the request.
"""

from __future__ import annotations

import logging

from dssr_core import ClusterError, DssrError

log = logging.getLogger("dssr_server.app")


def error_answer(exc: Exception, where: str) -> tuple[str, int]:
    """The message and HTTP status answering ``exc`` raised while serving ``where`` ("METHOD /path"), logged.

    A :class:`~dssr_core.DssrError` answers its own message and status (a
    transient cluster error is logged as such: the upstream asks again); any
    other exception is a bug, logged with its traceback and answered
    ``internal error`` without a word of it.
    """
    if isinstance(exc, DssrError):
        if isinstance(exc, ClusterError) and exc.transient:
            log.info("%s: %s (the upstream will ask again)", where, exc)
        elif exc.http_status >= 500:
            log.error("%s failed: %s", where, exc)
        else:
            log.info("%s refused: %s", where, exc)
        return exc.message, exc.http_status
    log.error("%s: unexpected error", where, exc_info=exc)
    return "internal error", 500
