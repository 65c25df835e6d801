"""The asynchronous client, and the source of the synchronous one.

``scripts/unasync.py`` writes ``_client.py`` from this file: change this one, and run the
script. What the two clients do differently (sending batches at once, file work) is in
``_async_io.py`` and ``_sync_io.py``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from vecserve_client import _encoding as enc
from vecserve_client._async_io import file_chunks, file_sha256, send_concurrently, write
from vecserve_client._exceptions import (
    ChecksumMismatch,
    error_from_response,
    transport_error,
)
from vecserve_client._http import (
    CHUNK,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    SHA256_HEADER,
    client_headers,
    collection_url,
)
from vecserve_client._models import CollectionInfo, Health, Hit, Point, QueryResult, Snapshot
from vecserve_client._transport import RETRIED, RETRY_EXTENSION, AsyncRetryTransport, Retries
from vecserve_client._types import (
    Example,
    Filter,
    FullText,
    Ids,
    ImageInput,
    IndexSpec,
    Metric,
    Payload,
    PayloadFieldType,
    PointId,
    ProgressCallback,
    SearchParams,
    Strategy,
    Tokenizer,
    Vector,
    Vectors,
)


class AsyncClient:
    """A connection to a vecserve server, for asyncio: the methods of :class:`Client`,
    as coroutines (and ``scroll`` as an async iterator).

    Args:
        url: the server's base URL.
        api_key: sent as ``Authorization: Bearer <api_key>`` when the server wants keys.
        timeout: seconds, or an :class:`httpx.Timeout` (exported as ``Timeout``) for
            connect, read, write and pool separately; None waits forever.
        retries: how requests that are safe to repeat are retried (see :class:`Retries`).
        headers: extra headers sent with every request.
        transport: an httpx async transport to send requests through instead of the
            network, such as ``httpx.MockTransport`` or ``httpx.ASGITransport(app)``.

    Example:
        >>> from vecserve_client import AsyncClient
        >>> async with AsyncClient("http://127.0.0.1:8000", api_key="...") as client:
        ...     await client.create_collection("products", dim=384)
        ...     await client.upsert("products", ["a", "b"], vectors)
        ...     hits = await client.search("products", vectors[0], k=5)
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        retries: Retries = DEFAULT_RETRIES,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=url,
            headers=client_headers(api_key, headers),
            timeout=timeout,
            transport=AsyncRetryTransport(transport or httpx.AsyncHTTPTransport(), retries),
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections to the server.

        Returns:
            None.

        Raises:
            Nothing.

        Example:
            >>> await client.close()  # or use the client as a context manager
        """
        await self._http.aclose()

    async def _request(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        content: Any = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        accept: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        """Send one request; raise the typed error for an error answer not in ``accept``.

        A ``json`` body is encoded here rather than by httpx, so that numpy values in
        payloads and filters go as the numbers, booleans and lists they hold."""
        if json is not None:
            content = enc.json_body(json)
            headers = {"content-type": "application/json", **(headers or {})}
        request = self._http.build_request(
            method,
            url,
            params=params,
            content=content,
            headers=headers,
            extensions={RETRY_EXTENSION: RETRIED[operation]},
        )
        try:
            response = await self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc
        if response.is_error and response.status_code not in accept:
            try:
                await response.aread()
            finally:
                await response.aclose()
            raise error_from_response(response)
        return response

    # -- collections ---------------------------------------------------------------------

    async def create_collection(
        self,
        name: str,
        dim: int | None = None,
        *,
        metric: Metric = "cosine",
        index: IndexSpec = "auto",
        embedder: str | None = None,
        store_source: bool = False,
        thumbnails: bool = False,
        full_text: FullText | None = None,
        payload_indexes: Mapping[str, PayloadFieldType] | None = None,
    ) -> CollectionInfo:
        """Create a collection, or return it when it exists with the same configuration.

        Args:
            name: the collection's name.
            dim: the dimension of its vectors; may be left out with an ``embedder``,
                whose dimension it then takes.
            metric: ``cosine``, ``dot`` or ``l2``.
            index: an index kind (``auto``, ``flat``, ``ivf_flat``, ``ivf_pq``, ``hnsw``)
                or a spec such as ``{"kind": "ivf_pq", "nlist": 1024, "pq_m": 16}``.
            embedder: the model that turns the collection's texts or images into vectors,
                one of the server's allowlist; None for a vectors-only collection.
            store_source: keep each point's text (or image hash) in its payload, under
                ``"_source"``.
            thumbnails: keep a small JPEG of each image point (at most 128 px a side),
                for :meth:`get_thumbnail`; needs an image ``embedder``.
            full_text: payload fields to index for lexical (BM25) search, as in
                :meth:`set_full_text`: ``{"fields": ["title", {"path": "body", "weight":
                0.5}], "tokenizer": "porter"}``, or a list of fields.
            payload_indexes: payload fields to index for filters, as in
                :meth:`create_payload_index`: ``{"category": "keyword", "price":
                "number"}``.

        Returns:
            The collection's configuration and state.

        Raises:
            CollectionExists: the name is taken by a different configuration.
            InvalidInput: the server does not accept ``dim`` or ``index``.
            InvalidFullText: the full-text declaration cannot be built.
            InvalidPayloadIndex: a payload index with a bad path or type.
            UnknownEmbedder: ``embedder`` is not in the server's allowlist.

        Example:
            >>> info = await client.create_collection("products", dim=384, metric="cosine")
            >>> info.count
            0
        """
        body: dict[str, Any] = {
            "metric": metric,
            "index": index if isinstance(index, str) else dict(index),
        }
        # Left out when unset, so that an older server (which refuses unknown fields)
        # still takes a request that does not use them.
        if dim is not None:
            body["dim"] = dim
        if embedder is not None:
            body["embedder"] = embedder
        body.update(enc.switched_on(store_source=store_source, thumbnails=thumbnails))
        if full_text is not None:
            body["full_text"] = enc.full_text(full_text)
        body.update(enc.given(payload_indexes=payload_indexes))
        response = await self._request("create_collection", "PUT", collection_url(name), json=body)
        return CollectionInfo.model_validate(response.json())

    async def set_full_text(
        self,
        name: str,
        fields: Sequence[str | Mapping[str, Any]],
        *,
        tokenizer: Tokenizer = "unicode61",
    ) -> CollectionInfo:
        """Declare a collection's full-text fields (replacing any before), for lexical
        (BM25) search in :meth:`query` and hybrid :meth:`search`.

        Points written from now on are indexed with their write; the points already there
        are indexed in the background: ``info.full_text["state"]`` is ``"indexing"`` until
        they all are, and lexical search covers the ``indexed`` ones meanwhile.

        Args:
            name: the collection's name.
            fields: payload fields by dotted path (``"title"``, ``"brand.name"``,
                ``"_source.text"``), or ``{"path": ..., "weight": ...}`` (a match in a field
                of weight 2 counts twice).
            tokenizer: ``unicode61`` (any language), ``porter`` (English stemming) or
                ``trigram`` (substrings, CJK).

        Returns:
            The collection's configuration and state, with ``full_text``.

        Raises:
            InvalidFullText: a bad path, weight or tokenizer.
            CollectionNotFound: there is no such collection.

        Example:
            >>> info = await client.set_full_text("products", ["title", "_source.text"])
            >>> info.full_text["state"]
            'indexing'
        """
        body = enc.full_text({"fields": list(fields), "tokenizer": tokenizer})
        response = await self._request(
            "set_full_text", "PUT", collection_url(name, "full_text"), json=body
        )
        return CollectionInfo.model_validate(response.json())

    async def drop_full_text(self, name: str) -> CollectionInfo:
        """Drop a collection's full-text fields and their index.

        Args:
            name: the collection's name.

        Returns:
            The collection's configuration and state (``full_text`` None).

        Raises:
            CollectionNotFound: there is no such collection.

        Example:
            >>> (await client.drop_full_text("products")).full_text is None
            True
        """
        response = await self._request(
            "drop_full_text", "DELETE", collection_url(name, "full_text")
        )
        return CollectionInfo.model_validate(response.json())

    async def create_payload_index(
        self, name: str, field: str, type: PayloadFieldType
    ) -> CollectionInfo:
        """Index a payload field for filters (replacing its index of another type).

        A filter whose every condition is on indexed fields is then answered without
        reading payloads, in milliseconds at any selectivity. Points written from now on
        are indexed with their write; those already there in the background:
        ``info.payload_indexes[field]["state"]`` is ``"indexing"`` until they all are, and
        filters on the field read the payloads meanwhile.

        Args:
            name: the collection's name.
            field: the payload field, by dotted path (``"category"``, ``"brand.name"``).
            type: ``"keyword"`` (strings and booleans, and arrays of them: equality,
                ``$in``, ``$ne``, ``$nin`` and ranges of strings) or ``"number"``
                (integers and floats: those and ranges of numbers); either answers
                ``$exists`` and nulls too.

        Returns:
            The collection's configuration and state, with ``payload_indexes``.

        Raises:
            InvalidPayloadIndex: a bad path or type.
            CollectionNotFound: there is no such collection.

        Example:
            >>> info = await client.create_payload_index("products", "price", "number")
            >>> info.payload_indexes["price"]["type"]
            'number'
        """
        response = await self._request(
            "create_payload_index",
            "PUT",
            collection_url(name, "payload_indexes", field),
            json={"type": type},
        )
        return CollectionInfo.model_validate(response.json())

    async def drop_payload_index(self, name: str, field: str) -> CollectionInfo:
        """Stop indexing a payload field; dropping one not indexed changes nothing.

        Args:
            name: the collection's name.
            field: the payload field, by dotted path.

        Returns:
            The collection's configuration and state.

        Raises:
            CollectionNotFound: there is no such collection.

        Example:
            >>> "price" in (await client.drop_payload_index("products", "price")).payload_indexes
            False
        """
        response = await self._request(
            "drop_payload_index", "DELETE", collection_url(name, "payload_indexes", field)
        )
        return CollectionInfo.model_validate(response.json())

    async def list_collections(self) -> list[str]:
        """The names of all collections, sorted.

        Returns:
            The collection names.

        Raises:
            Unauthorized: the server wants an API key.

        Example:
            >>> await client.list_collections()
            ['products', 'reviews']
        """
        response = await self._request("list_collections", "GET", "/collections")
        names: list[str] = response.json()["collections"]
        return names

    async def get_collection(self, name: str) -> CollectionInfo:
        """A collection's configuration, size and the index serving it.

        Args:
            name: the collection's name.

        Returns:
            The collection's configuration and state.

        Raises:
            CollectionNotFound: there is no such collection.

        Example:
            >>> info = await client.get_collection("products")
            >>> info.count
            1000
        """
        response = await self._request("get_collection", "GET", collection_url(name))
        return CollectionInfo.model_validate(response.json())

    async def delete_collection(self, name: str) -> None:
        """Drop a collection and all its points.

        Args:
            name: the collection's name.

        Returns:
            None.

        Raises:
            CollectionNotFound: there is no such collection.

        Example:
            >>> await client.delete_collection("products")
        """
        await self._request("delete_collection", "DELETE", collection_url(name))

    # -- points --------------------------------------------------------------------------

    async def upsert(
        self,
        collection: str,
        ids: Ids,
        vectors: Vectors | None = None,
        *,
        payloads: Sequence[Payload | None] | None = None,
        texts: Sequence[str] | None = None,
        images: Sequence[ImageInput] | None = None,
        store_source: bool | None = None,
        batch_size: int = 256,
        parallel: int = 1,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        """Insert points, or replace those whose ids exist.

        Give the points' vectors, or their texts or images for a collection with an
        embedder. The points are sent ``batch_size`` at a time, up to ``parallel``
        batches at once; each batch is written all or nothing. When a batch fails, its
        error is raised, the batches not yet sent are not sent, and those written stay
        written: upserting the same points again is harmless.

        Args:
            collection: the collection's name.
            ids: the points' ids, strings or integers (or a numpy array of integers),
                unique within the call.
            vectors: one row per id: a numpy array [n, dim] or a list of lists.
            payloads: one JSON object (or None) per id.
            texts: one text per id, embedded by the server.
            images: one image per id (bytes, a path or a PIL image), embedded by the server.
            store_source: keep each text (or image hash) in the point's payload, under
                ``"_source"``; None follows the collection's setting.
            batch_size: points per request; keep it under the server's limit.
            parallel: how many batches are in flight at once (in threads, or in tasks
                under asyncio).
            on_progress: called as ``on_progress(done, total)`` after each batch.

        Returns:
            How many points were written.

        Raises:
            ValueError: not exactly one of vectors, texts or images, or columns whose
                lengths differ from ``ids``.
            DuplicateIds: an id appears more than once (found before anything is sent,
                whatever the ``batch_size``).
            DimensionMismatch: the vectors' dimension is not the collection's.
            RequestTooLarge: ``batch_size`` is over the server's limit.
            CollectionNotFound: there is no such collection.

        Example:
            >>> vectors = np.random.rand(10_000, 384).astype(np.float32)
            >>> await client.upsert("products", list(range(10_000)), vectors, parallel=4)
            10000
        """
        columns = enc.PointColumns.of(ids, vectors, payloads, texts, images, store_source)
        batches = columns.batches(batch_size)
        done = 0

        def sent(written: int) -> None:
            nonlocal done
            done += written
            if on_progress is not None:
                on_progress(done, len(columns))

        if parallel <= 1:
            for batch in batches:
                sent(await self._upsert_batch(collection, batch))
        else:
            await send_concurrently(
                lambda batch: self._upsert_batch(collection, batch), batches, parallel, sent
            )
        return done

    async def _upsert_batch(self, collection: str, batch: enc.PointColumns) -> int:
        url = collection_url(collection, "points")
        response = await self._request("upsert", "PUT", url, json=batch.body())
        upserted: int = response.json()["upserted"]
        return upserted

    async def get(self, collection: str, ids: Ids, *, with_vectors: bool = False) -> list[Point]:
        """Points by id, in the order asked; ids that do not exist are left out.

        Args:
            collection: the collection's name.
            ids: the ids to fetch (a list, or a numpy array of integers).
            with_vectors: also return each point's vector, as a float32 numpy array.

        Returns:
            The points found.

        Raises:
            CollectionNotFound: there is no such collection.

        Example:
            >>> [p.payload for p in await client.get("products", ["a", "b"])]
            [{'color': 'red'}, {'color': 'blue'}]
        """
        body = {"ids": [enc.point_id(i) for i in ids], **enc.vector_options(with_vectors)}
        response = await self._request(
            "get", "POST", collection_url(collection, "points", "get"), json=body
        )
        return enc.points(response.json())

    async def get_point(self, collection: str, id: PointId, *, with_vectors: bool = False) -> Point:
        """One point by id.

        Args:
            collection: the collection's name.
            id: the point's id; ``"7"`` and ``7`` are different points.
            with_vectors: also return the point's vector, as a float32 numpy array.

        Returns:
            The point.

        Raises:
            PointNotFound: no point has the id.
            CollectionNotFound: there is no such collection.

        Example:
            >>> point = await client.get_point("products", "a")
            >>> point.payload
            {'color': 'red'}
        """
        value = enc.point_id(id)
        params = enc.vector_params(with_vectors)
        if isinstance(value, str):
            params["id_type"] = "str"  # else the server reads "7" as the integer 7
        url = collection_url(collection, "points", str(value))
        response = await self._request("get_point", "GET", url, params=params)
        return Point.model_validate(response.json())

    async def get_thumbnail(self, collection: str, id: PointId) -> bytes:
        """The thumbnail of an image point: a JPEG of at most 128 px a side, kept by a
        collection made with ``thumbnails=True``.

        Args:
            collection: the collection's name.
            id: the point's id; ``"7"`` and ``7`` are different points.

        Returns:
            The JPEG file's bytes.

        Raises:
            PointNotFound: no point has the id.
            ThumbnailNotFound: the point has no thumbnail (not written as an image, or the
                collection keeps none).
            CollectionNotFound: there is no such collection.

        Example:
            >>> jpeg = await client.get_thumbnail("photos", "cat")
            >>> jpeg[:2]
            b'\\xff\\xd8'
        """
        value = enc.point_id(id)
        params = {"id_type": "str"} if isinstance(value, str) else {}
        url = collection_url(collection, "points", str(value), "thumbnail")
        response = await self._request("get_thumbnail", "GET", url, params=params)
        return response.content

    async def delete(
        self,
        collection: str,
        ids: Ids | None = None,
        *,
        filter: Filter | None = None,
    ) -> int:
        """Delete points by id, or every point that matches a filter.

        Args:
            collection: the collection's name.
            ids: the ids to delete (those that do not exist are ignored).
            filter: delete the points whose payloads match, instead of ``ids``.

        Returns:
            How many points were deleted.

        Raises:
            ValueError: both or neither of ``ids`` and ``filter``.
            InvalidFilter: the filter does not parse.
            CollectionNotFound: there is no such collection.

        Example:
            >>> await client.delete("products", ["a", "b"])
            2
            >>> await client.delete("products", filter={"price": {"$gt": 100}})
            17
        """
        if (ids is None) == (filter is None):
            raise ValueError("give exactly one of ids or filter")
        url = collection_url(collection, "points", "delete")
        if ids is not None:
            body: dict[str, Any] = {"ids": [enc.point_id(i) for i in ids]}
            response = await self._request("delete_by_ids", "POST", url, json=body)
        else:
            body = {"filter": dict(filter or {})}
            response = await self._request("delete_by_filter", "POST", url, json=body)
        deleted: int = response.json()["deleted"]
        return deleted

    async def scroll(
        self,
        collection: str,
        *,
        filter: Filter | None = None,
        with_vectors: bool = False,
        page_size: int = 256,
    ) -> AsyncIterator[Point]:
        """Every point of a collection (or those matching a filter), page by page.

        Pages are fetched as the iteration reaches them, following the server's cursor,
        in a stable order.

        Args:
            collection: the collection's name.
            filter: only points whose payloads match.
            with_vectors: also return each point's vector, as a float32 numpy array.
            page_size: points per request.

        Returns:
            An iterator over the points.

        Raises:
            CollectionNotFound: there is no such collection.
            InvalidFilter: the filter does not parse.

        Example:
            >>> async for point in client.scroll("products", filter={"color": "red"}):
            ...     print(point.id, point.payload)
        """
        url = collection_url(collection, "points", "scroll")
        body = {"limit": page_size, **enc.vector_options(with_vectors), **enc.given(filter=filter)}
        while True:
            response = await self._request("scroll", "POST", url, json=body)
            page = response.json()
            for point in enc.points(page):
                yield point
            if page["next_cursor"] is None:
                return
            body["cursor"] = page["next_cursor"]

    # -- search --------------------------------------------------------------------------

    async def search(
        self,
        collection: str,
        vector: Vector | None = None,
        *,
        text: str | None = None,
        image: ImageInput | None = None,
        id: PointId | None = None,
        k: int = 10,
        filter: Filter | None = None,
        params: SearchParams | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
        hybrid: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """The ``k`` points nearest to one query, nearest first.

        Give exactly one query: a vector; a text or an image, for a collection with an
        embedder; or the id of a stored point, which is then left out of its own results.

        Args:
            collection: the collection's name.
            vector: the query vector (a list of floats or a 1-d numpy array).
            text: a text to embed and search with.
            image: an image to embed and search with (bytes, a path or a PIL image).
            id: search with the vector of this stored point.
            k: how many results.
            filter: only points whose payloads match.
            params: index parameters for this search: ``{"nprobe": 64}``,
                ``{"ef_search": 128}`` or ``{"exact": True}``.
            with_payload: return each hit's payload.
            with_vectors: return each hit's vector, as a float32 numpy array.
            hybrid: also search the collection's full-text fields and fuse both
                rankings: ``{"text": ...}`` (default: ``text``), ``"alpha"`` (relative
                score fusion, 1 = this query only, 0 = words only; default: the server's
                default fusion) and ``"match"`` (``any``, ``all``, ``phrase``, ``prefix``).
                Scores are then fused scores; see :meth:`query`.

        Returns:
            The hits, each with ``id``, ``score`` and ``payload``.

        Raises:
            ValueError: not exactly one query.
            DimensionMismatch: the vector's dimension is not the collection's.
            PointNotFound: no point has the id.
            InvalidFilter: the filter does not parse.
            InvalidK: ``k`` is over the server's limit.
            InvalidQuery: ``hybrid`` without a text.
            FullTextNotDeclared: ``hybrid`` on a collection without full-text fields.
            CollectionNotFound: there is no such collection.

        Example:
            >>> hits = await client.search("products", query_vector, k=5, filter={"color": "red"})
            >>> [(hit.id, hit.score) for hit in hits]
            [('a', 0.93), (7, 0.88), ...]
            >>> hits = await client.search("products", text="red shoes", hybrid={"alpha": 0.5})
        """
        url = collection_url(collection, "search")
        body = enc.query(vector, text, image, id)
        body.update(enc.search_options(k, filter, params, with_payload, with_vectors))
        body.update(enc.given(hybrid=hybrid))
        response = await self._request("search", "POST", url, json=body)
        return enc.hits(response.json())

    async def query(
        self,
        collection: str,
        prefetch: Sequence[Mapping[str, Any]],
        *,
        fusion: Mapping[str, Any] | None = None,
        rerank: Mapping[str, Any] | None = None,
        filter: Filter | None = None,
        limit: int = 10,
        offset: int = 0,
        with_payload: bool = True,
        with_vectors: bool = False,
        explain: bool = False,
        partial: bool = False,
    ) -> QueryResult:
        """Hybrid retrieval: prefetch stages, fused, optionally reranked, then paged.

        The server's engine runs the pipeline; this method only sends it.

        Args:
            collection: the collection's name.
            prefetch: the stages, each ``{"dense": {...}}`` (one of ``vector``, ``text``,
                ``image``, ``point_id``, and optional ``params``) or ``{"lexical": {"text":
                ..., "match": "any" | "all" | "phrase" | "prefix" | "fts5"}}`` (BM25 over
                the full-text fields; words are never FTS5 syntax unless ``match`` is
                ``fts5``), with optional ``filter``, ``limit`` (candidates, at least
                ``offset + limit``) and ``weight``.
            fusion: ``{"method": "relative_score" | "rrf" | "dbsf", "k": 60, "alpha":
                ...}``; ``alpha`` weighs dense stages ``alpha`` and lexical ones
                ``1 - alpha``. Default: the server's (relative score, equal weights).
            rerank: ``{"cross_encoder": {"model": name, "field": "_source.text"}}`` (a
                model of the server's allowlist) or ``{"mmr": {"lambda": 0.5}}``
                (diversity over the stored vectors), with ``"candidates"`` (default 50).
            filter: holds on every stage, besides each stage's own.
            limit: how many results.
            offset: how many of the best to skip (for paging).
            with_payload: return each hit's payload.
            with_vectors: return each hit's vector, as a float32 numpy array.
            explain: each hit carries its rank and score in each stage.
            partial: on a cluster router, accept an answer from the shards that can give
                one when others cannot; those are then named in ``missing_shards``.

        Returns:
            The hits, best first, ``full_text`` progress while a new full-text
            declaration is still being indexed, and ``missing_shards`` (with
            ``partial``, when shards could not answer).

        Raises:
            InvalidQuery: the plan cannot run (or an FTS5 expression does not parse).
            FullTextNotDeclared: a lexical stage on a collection without full-text fields.
            InvalidFilter: a filter does not parse.
            DimensionMismatch: a vector's dimension is not the collection's.
            CollectionNotFound: there is no such collection.
            ShardUnavailable: a shard of a cluster could not answer (without ``partial``).

        Example:
            >>> result = await client.query(
            ...     "products",
            ...     prefetch=[{"dense": {"text": "red shoes"}}, {"lexical": {"text": "red shoes"}}],
            ...     fusion={"method": "rrf"},
            ...     limit=10,
            ... )
            >>> [(hit.id, hit.score) for hit in result.hits]
            [('a', 0.032), (7, 0.031), ...]
        """
        url = collection_url(collection, "query")
        body = {
            "prefetch": enc.stages(prefetch),
            "limit": limit,
            "offset": offset,
            "with_payload": with_payload,
            **enc.given(fusion=fusion, rerank=rerank, filter=filter),
            **enc.switched_on(with_vectors=with_vectors, explain=explain, partial=partial),
        }
        response = await self._request("query", "POST", url, json=body)
        return QueryResult.model_validate(response.json())

    async def search_batch(
        self,
        collection: str,
        vectors: Vectors | None = None,
        *,
        texts: Sequence[str] | None = None,
        images: Sequence[ImageInput] | None = None,
        ids: Ids | None = None,
        k: int = 10,
        filter: Filter | None = None,
        params: SearchParams | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> list[list[Hit]]:
        """The ``k`` nearest points to each of several queries, in one request.

        Give exactly one kind of query: a matrix of vectors (one row per query), texts,
        images, or ids of stored points. The server searches vectors as one batch.

        Args:
            collection: the collection's name.
            vectors: the query vectors: a numpy array [n, dim] or a list of lists.
            texts: texts to embed and search with.
            images: images to embed and search with (bytes, paths or PIL images).
            ids: search with the vectors of these stored points.
            k: how many results per query.
            filter: only points whose payloads match.
            params: index parameters for these searches (see :meth:`search`).
            with_payload: return each hit's payload.
            with_vectors: return each hit's vector, as a float32 numpy array.

        Returns:
            One list of hits per query, in the order of the queries.

        Raises:
            ValueError: not exactly one kind of query.
            RequestTooLarge: more queries than the server takes in one batch.
            DimensionMismatch: the vectors' dimension is not the collection's.
            CollectionNotFound: there is no such collection.

        Example:
            >>> results = await client.search_batch("products", np.random.rand(3, 384), k=5)
            >>> [len(hits) for hits in results]
            [5, 5, 5]
        """
        options = enc.search_options(k, filter, params, with_payload, with_vectors)
        searches = [{**q, **options} for q in enc.queries(vectors, texts, images, ids)]
        url = collection_url(collection, "search", "batch")
        response = await self._request("search_batch", "POST", url, json={"searches": searches})
        return [enc.hits(result) for result in response.json()["results"]]

    async def recommend(
        self,
        collection: str,
        positive: Sequence[Example],
        negative: Sequence[Example] = (),
        *,
        strategy: Strategy = "average",
        k: int = 10,
        filter: Filter | None = None,
        params: SearchParams | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> list[Hit]:
        """Points like the positive examples and unlike the negative ones.

        Examples are ids of stored points, vectors, or for a collection with an embedder
        ``{"text": ...}`` and ``{"image": ...}`` (bytes, a path or a PIL image); the
        examples given by id are left out of the results.

        Args:
            collection: the collection's name.
            positive: examples to be near (at least one).
            negative: examples to be far from.
            strategy: ``average`` searches once with the examples' combination;
                ``best_score`` ranks each candidate by its best positive similarity
                against its best negative one.
            k: how many results.
            filter: only points whose payloads match.
            params: index parameters for this search (see :meth:`search`).
            with_payload: return each hit's payload.
            with_vectors: return each hit's vector, as a float32 numpy array.

        Returns:
            The hits, best first.

        Raises:
            PointNotFound: an example id does not exist.
            DimensionMismatch: an example vector's dimension is not the collection's.
            CollectionNotFound: there is no such collection.

        Example:
            >>> hits = await client.recommend("products", positive=["a", "b"], negative=["z"], k=5)
            >>> hits = await client.recommend("products", [{"text": "red shoes"}], k=5)
        """
        body = {
            "positive": [enc.example(e) for e in positive],
            "negative": [enc.example(e) for e in negative],
            "strategy": strategy,
            **enc.search_options(k, filter, params, with_payload, with_vectors),
        }
        url = collection_url(collection, "recommend")
        response = await self._request("recommend", "POST", url, json=body)
        return enc.hits(response.json())

    # -- snapshots -----------------------------------------------------------------------

    async def create_snapshot(self, collection: str) -> Snapshot:
        """Snapshot a collection on the server: a consistent copy of its points and index.

        Args:
            collection: the collection's name.

        Returns:
            The snapshot's name, size and SHA-256.

        Raises:
            CollectionNotFound: there is no such collection.

        Example:
            >>> snapshot = await client.create_snapshot("products")
            >>> snapshot.name, snapshot.size
        """
        response = await self._request(
            "create_snapshot", "POST", collection_url(collection, "snapshots")
        )
        return Snapshot.model_validate(response.json())

    async def list_snapshots(self, collection: str) -> list[Snapshot]:
        """The snapshots the server keeps of a collection.

        Args:
            collection: the collection's name.

        Returns:
            The snapshots, with their names, sizes and SHA-256s; none for a collection
            that has none or does not exist (snapshots outlive their collection).

        Raises:
            InvalidName: ``collection`` is not a valid collection name.

        Example:
            >>> [s.name for s in await client.list_snapshots("products")]
        """
        response = await self._request(
            "list_snapshots", "GET", collection_url(collection, "snapshots")
        )
        return [Snapshot.model_validate(s) for s in response.json()["snapshots"]]

    async def download_snapshot(
        self, collection: str, snapshot: str, path: str | os.PathLike[str]
    ) -> Path:
        """Download a snapshot to a file, checking its SHA-256.

        The file is written beside ``path`` under a temporary name and renamed when
        complete and checked, so ``path`` never holds a partial snapshot.

        Args:
            collection: the collection's name.
            snapshot: the snapshot's name.
            path: where to write the snapshot (a tar file).

        Returns:
            The path written.

        Raises:
            SnapshotNotFound: the collection has no snapshot of that name.
            InvalidName: ``snapshot`` is not a snapshot's name (nor ``collection`` a
                collection's).
            ChecksumMismatch: the file's SHA-256 differs from the server's.

        Example:
            >>> await client.download_snapshot("products", snapshot.name, "products.tar")
            PosixPath('products.tar')
        """
        target = Path(path)
        partial = target.with_name(target.name + ".part")
        digest = hashlib.sha256()
        url = collection_url(collection, "snapshots", snapshot)
        response = await self._request("download_snapshot", "GET", url, stream=True)
        try:
            with open(partial, "wb") as f:
                async for chunk in response.aiter_bytes(CHUNK):
                    digest.update(chunk)
                    await write(f, chunk)
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise transport_error(exc) from exc
        finally:
            await response.aclose()
        expected = response.headers.get(SHA256_HEADER)
        if expected is not None and expected.lower() != digest.hexdigest():
            partial.unlink()
            raise ChecksumMismatch(
                f"snapshot {snapshot!r} arrived with SHA-256 {digest.hexdigest()}; "
                f"the server sent {expected}",
                status_code=response.status_code,
                name="ChecksumMismatch",
                request_id=response.headers.get("x-request-id"),
                response=response,
            )
        partial.replace(target)
        return target

    async def restore_snapshot(
        self, collection: str, path: str | os.PathLike[str]
    ) -> CollectionInfo:
        """Restore a snapshot file as a collection that does not exist yet, or is empty.

        The file is streamed to the server with its SHA-256, and checked in full there
        before the collection appears.

        Args:
            collection: the name to restore the collection under (it may differ from
                the name the snapshot was taken from).
            path: a snapshot file, as written by :meth:`download_snapshot`.

        Returns:
            The restored collection's configuration and state.

        Raises:
            CollectionNotEmpty: a collection of that name exists and holds points.
            InvalidSnapshot: the file is damaged, unsafe or not a snapshot.
            ChecksumMismatch: the file changed while it was sent.
            RequestTooLarge: the file is over the server's upload limit.

        Example:
            >>> info = await client.restore_snapshot("products-copy", "products.tar")
            >>> info.count
            1000
        """
        source = Path(path)
        params = {"sha256": await file_sha256(source)}
        headers = {
            "content-type": "application/x-tar",
            "content-length": str(source.stat().st_size),
        }
        url = collection_url(collection, "snapshots", "restore")
        response = await self._request(
            "restore_snapshot",
            "POST",
            url,
            params=params,
            content=file_chunks(source),
            headers=headers,
        )
        return CollectionInfo.model_validate(response.json())

    async def delete_snapshot(self, collection: str, snapshot: str) -> None:
        """Delete a snapshot from the server.

        Args:
            collection: the collection's name.
            snapshot: the snapshot's name.

        Returns:
            None.

        Raises:
            SnapshotNotFound: the collection has no snapshot of that name.
            InvalidName: ``snapshot`` is not a snapshot's name (nor ``collection`` a
                collection's).

        Example:
            >>> await client.delete_snapshot("products", snapshot.name)
        """
        url = collection_url(collection, "snapshots", snapshot)
        await self._request("delete_snapshot", "DELETE", url)

    # -- health --------------------------------------------------------------------------

    async def health(self) -> Health:
        """Whether the server is up and ready to answer searches.

        Returns:
            ``ready`` is True once every collection is open and its index loaded.

        Raises:
            ConnectError: the server could not be reached.

        Example:
            >>> health = await client.health()
            >>> health.ready
            True
        """
        response = await self._request("health", "GET", "/readyz", accept=frozenset({503}))
        status = response.json().get("status", "")
        return Health(ready=response.status_code == 200, status=str(status))
