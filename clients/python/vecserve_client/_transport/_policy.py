"""When a request is sent again: the one retry policy of vecserve's clients.

The SDK's two clients follow it through their retry transports (``_async_retry.py``, and
``_retry.py`` generated from it), and so does ``vecserve index --url``, which sends its
points through the SDK (with more patient :class:`Retries`: a job rides out a restart).

Only requests that are safe to send twice are retried, and only when the first try
certainly or probably did not run: a connection error, a 429 (honouring ``Retry-After``)
or a 503 (but not ``EmbedderUnavailable``: that is the server's configuration, not a
passing state). Which requests are safe is decided per method, here:

====================  =====================================  =======  ==============================
method                request                                retried  why
====================  =====================================  =======  ==============================
create_collection     PUT /collections/{name}                yes      the same config: a no-op
list_collections      GET /collections                       yes      read
get_collection        GET /collections/{name}                yes      read
delete_collection     DELETE /collections/{name}             no       after a lost answer, a retry
                                                                      would raise CollectionNotFound
                                                                      for a drop that happened
upsert                PUT /collections/{name}/points         yes      by id: the same points again
                                                                      leave the same state
get                   POST .../points/get                    yes      read
get_point             GET .../points/{id}                    yes      read
delete (ids)          POST .../points/delete {"ids"}         yes      deleting the same ids again
                                                                      changes nothing
delete (filter)       POST .../points/delete {"filter"}      no       could delete points written
                                                                      in between that match
scroll                POST .../points/scroll                 yes      read
search                POST .../search                        yes      read
search_batch          POST .../search/batch                  yes      read
recommend             POST .../recommend                     yes      read
query                 POST .../query                         yes      read
set_full_text         PUT .../full_text                      yes      the same declaration again
                                                                      leaves the same state
drop_full_text        DELETE .../full_text                   yes      dropping none is a no-op
create_payload_index  PUT .../payload_indexes/{field}        yes      the same declaration again
                                                                      leaves the same state
drop_payload_index    DELETE .../payload_indexes/{field}     yes      dropping none is a no-op
create_snapshot       POST .../snapshots                     no       each call makes a snapshot
list_snapshots        GET .../snapshots                      yes      read
download_snapshot     GET .../snapshots/{snapshot}           yes      read; the file restarts
delete_snapshot       DELETE .../snapshots/{snapshot}        no       as delete_collection
restore_snapshot      POST .../snapshots/restore             no       after a lost answer, a retry
                                                                      would raise CollectionNotEmpty
health                GET /readyz                            no       reports the state now
====================  =====================================  =======  ==============================
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Final

import httpx
from pydantic import BaseModel, ConfigDict, Field

from vecserve_client._exceptions import EmbedderUnavailable, error_from_response, retry_after

RETRIED: Final[Mapping[str, bool]] = {
    "create_collection": True,
    "list_collections": True,
    "get_collection": True,
    "delete_collection": False,
    "upsert": True,
    "get": True,
    "get_point": True,
    "get_thumbnail": True,
    "delete_by_ids": True,
    "delete_by_filter": False,
    "scroll": True,
    "search": True,
    "search_batch": True,
    "recommend": True,
    "query": True,
    "set_full_text": True,
    "drop_full_text": True,
    "create_payload_index": True,
    "drop_payload_index": True,
    "create_snapshot": False,
    "list_snapshots": True,
    "download_snapshot": True,
    "delete_snapshot": False,
    "restore_snapshot": False,
    "health": False,
}

RETRY_EXTENSION: Final = "vecserve_retry"
"""The request extension that marks a request as safe to retry (see :data:`RETRIED`)."""

RETRY_STATUSES: Final = frozenset({429, 503})

# Failures after which the request may not have reached the server, or the connection
# broke before its answer: worth another try when the request is safe to repeat. A read
# timeout is not among them: the server may still be working on it, and a retry would
# multiply the caller's wait.
RETRY_ERRORS: Final = (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ConnectTimeout)


class Retries(BaseModel):
    """How requests that are safe to repeat are retried.

    The wait before retry ``n`` (from 1) is ``backoff * 2 ** (n - 1)`` seconds, capped at
    ``max_backoff``, of which the fraction ``jitter`` is drawn at random so that clients
    do not retry in step. A 429 or 503 with ``Retry-After`` waits what the server asks
    instead, unless that is over ``max_retry_after``: then the error is raised at once,
    or, with ``cap_retry_after``, ``max_retry_after`` is waited and the request sent
    again (for a batch job, which would rather wait than stop).

    Example:
        >>> Client("http://127.0.0.1:8000", retries=Retries(max_retries=5, backoff=0.5))
        >>> Client("http://127.0.0.1:8000", retries=Retries(max_retries=0))  # never retry
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_retries: int = Field(default=3, ge=0)
    backoff: float = Field(default=0.25, ge=0.0)
    max_backoff: float = Field(default=8.0, ge=0.0)
    max_retry_after: float = Field(default=60.0, ge=0.0)
    jitter: float = Field(default=0.5, ge=0.0, le=1.0)
    cap_retry_after: bool = False

    def delay(self, retry: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number ``retry`` (from 1), or None to give up."""
        if retry > self.max_retries:
            return None
        if retry_after is not None:
            if retry_after <= self.max_retry_after:
                return retry_after
            return self.max_retry_after if self.cap_retry_after else None
        delay = min(self.max_backoff, self.backoff * 2.0 ** (retry - 1))
        return delay * (1.0 - self.jitter * random.random())


def wait_for(retries: Retries, retry: int, response: httpx.Response) -> float | None:
    """Seconds to wait before sending a request again after ``response`` (one of
    :data:`RETRY_STATUSES`, read), or None to return it as it is."""
    if isinstance(error_from_response(response), EmbedderUnavailable):
        return None
    return retries.delay(retry, retry_after(response))
