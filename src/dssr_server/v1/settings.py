"""``/v1``'s settings: the administrator claim and the bound on output followers."""

from __future__ import annotations

from dataclasses import dataclass

from dssr_core import Settings

from .access import ADMIN_CLAIM_VARIABLE, AdminClaim

#: the setting bounding the ``?follow=true`` answers streamed at once
MAX_FOLLOWERS_VARIABLE = "JARVICE_DSSR_MAX_FOLLOWERS"


@dataclass(frozen=True)
class V1Settings:
    """How ``/v1`` authorizes and streams (``JARVICE_DSSR_ADMIN_CLAIM``, ``JARVICE_DSSR_MAX_FOLLOWERS``)."""

    admin_claim: AdminClaim | None = None
    #: each follower holds one of the server's threads while it streams: at most this many at once
    max_followers: int = 4
    #: seconds between two reads of a followed job's output
    follow_interval: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "V1Settings":
        """By default at most half the server's threads (``WAITRESS_THREADS``, 8) follow output, so
        that followers never starve the upstream's polls."""
        threads = settings.integer("WAITRESS_THREADS", 8, minimum=1, maximum=256)
        return cls(
            admin_claim=AdminClaim.parse(settings.text(ADMIN_CLAIM_VARIABLE)),
            max_followers=settings.integer(MAX_FOLLOWERS_VARIABLE, max(1, threads // 2), minimum=0, maximum=threads),
            follow_interval=settings.number("JARVICE_DSSR_FOLLOW_INTERVAL", 1.0, minimum=0.1),
        )
