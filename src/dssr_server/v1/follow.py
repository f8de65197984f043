"""``GET /v1/jobs/{id}/output?follow=true``: a job's output streamed as it is written, until the job ends.

How it stays bounded:

* one read of the cluster per followed job per interval, whatever the number
  of its followers: every follower of a job reads one shared :class:`Feed`
  (so SSH channels or REST calls grow with followed jobs, never with followers);
* a follower holds one of the server's threads while it streams (WSGI), so at
  most ``JARVICE_DSSR_MAX_FOLLOWERS`` stream at once (half the threads by
  default); one more is answered ``503`` with ``Retry-After``.

Bytes are read by offset (:meth:`dssr_core.Connector.read_output`), so every
line reaches each follower once and in order.  A job's end is seen in the
shared queue snapshot *before* a read: the read that follows it holds the
whole output, and then the stream closes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Iterator

from dssr_core import Busy, ClusterError, Downstream, DssrError, JobRef, NotFound

log = logging.getLogger(__name__)

#: bytes asked of the connector per read
CHUNK = 65536
#: bytes of a job's output kept for its followers (a follower further behind skips to what is kept)
WINDOW = 8 * 1024 * 1024


class Feed:
    """One job's output as its followers have read it so far (one cluster read per interval)."""

    def __init__(self, downstream: Downstream, ref: JobRef, interval: float) -> None:
        self.downstream = downstream
        self.ref = ref
        self.interval = interval
        self.lock = threading.Lock()
        self.data = bytearray()
        #: the offset of ``data[0]`` in the output
        self.base = 0
        self.fetched = -interval
        self.ended = False
        self.followers = 0

    @property
    def end(self) -> int:
        return self.base + len(self.data)

    def read(self, offset: int) -> tuple[bytes, int, bool]:
        """(bytes from ``offset`` on, the next offset, whether the job ended and all is read)."""
        with self.lock:
            if offset >= self.end and not self.ended and time.monotonic() - self.fetched >= self.interval:
                self._fetch()
            offset = max(offset, self.base)
            data = bytes(self.data[offset - self.base : offset - self.base + CHUNK])
            offset += len(data)
            return data, offset, self.ended and offset >= self.end

    def tail_offset(self, lines: int) -> int:
        """The offset where the last ``lines`` lines read so far begin."""
        with self.lock:
            if not self.ended and self.fetched < 0:
                self._fetch()
            cut, pos = len(self.data), len(self.data)
            if self.data.endswith(b"\n"):
                pos -= 1
            for _ in range(lines):
                found = self.data.rfind(b"\n", 0, pos)
                if found < 0:
                    return self.base
                cut, pos = found + 1, found
            return self.base + cut

    def _fetch(self) -> None:
        try:
            live = self.downstream.runstatus(self.ref) is not None
        except ClusterError as exc:
            if not exc.transient:
                raise
            # the cluster did not answer this once (a dropped connection): the stream goes on, asked again
            # at the next interval, rather than ending as if the job had
            log.info("following job %s: %s (asked again in %.1f s)", self.ref.jobid, exc, self.interval)
            self.fetched = time.monotonic()
            return
        while True:
            try:
                chunk = self.downstream.read_output(self.ref, self.end, CHUNK)
            except NotFound:
                break  # no output yet
            except ClusterError as exc:
                if not exc.transient:
                    raise
                live = True  # e.g. accounting has not got the job's end yet: read again at the next interval
                break
            self.data += chunk.data
            if len(chunk.data) < CHUNK:
                break
        if len(self.data) > WINDOW:
            drop = len(self.data) - WINDOW
            del self.data[:drop]
            self.base += drop
        self.fetched = time.monotonic()
        self.ended = not live


class Following:
    """One follower's answer: an iterable of bytes that gives its place back when closed."""

    def __init__(self, followers: "Followers", feed: Feed, offset: int) -> None:
        self.followers = followers
        self.feed = feed
        self.offset = offset
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        while not self.closed:
            try:
                data, self.offset, done = self.feed.read(self.offset)
            except DssrError as exc:
                # the answer has begun (or waitress would answer a bare 500): end the stream, said in the log
                log.warning("following job %s stopped: %s", self.feed.ref.jobid, exc)
                return
            if data:
                yield data
                continue
            if done:
                return
            time.sleep(max(0.05, self.feed.interval - (time.monotonic() - self.feed.fetched)))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.followers.leave(self.feed)


class Followers:
    """Every follower of every job: the bound, and one :class:`Feed` per followed job."""

    def __init__(self, downstream: Downstream, limit: int, interval: float) -> None:
        self.downstream = downstream
        self.limit = limit
        self.interval = interval
        self.lock = threading.Lock()
        self.feeds: dict[JobRef, Feed] = {}
        self.count = 0

    def follow(self, ref: JobRef, lines: int | None) -> Following:
        """A follower of ``ref`` from the start of its output (or its last ``lines`` lines); Busy at the bound."""
        with self.lock:
            if self.count >= self.limit:
                raise Busy(f"This server streams at most {self.limit} outputs at once (JARVICE_DSSR_MAX_FOLLOWERS).")
            self.count += 1
            feed = self.feeds.get(ref)
            if feed is None:
                feed = self.feeds[ref] = Feed(self.downstream, ref, self.interval)
            feed.followers += 1
        try:
            offset = feed.tail_offset(lines) if lines is not None else 0
        except BaseException:
            self.leave(feed)
            raise
        return Following(self, feed, offset)

    def leave(self, feed: Feed) -> None:
        with self.lock:
            self.count -= 1
            feed.followers -= 1
            if feed.followers == 0 and self.feeds.get(feed.ref) is feed:
                del self.feeds[feed.ref]
