"""A LangChain ``VectorStore`` over a vecserve collection (``vecserve-client[langchain]``).

Each document is one point: its id is the document's id (a string), its payload
``{"page_content": text, "metadata": {...}}``. Vectors come from a LangChain
``Embeddings`` given to the store, or, for a collection with an embedder, from the
server, which is then sent the texts themselves.

>>> from vecserve_client.integrations.langchain import VecserveVectorStore
>>> store = VecserveVectorStore("docs", url="http://127.0.0.1:8000", embedder="minilm")
>>> store.add_texts(["red shoes", "blue hat"], [{"kind": "shoe"}, {"kind": "hat"}])
>>> store.similarity_search("footwear", k=1, filter={"kind": {"$in": ["shoe", "boot"]}})
[Document(id='...', metadata={'kind': 'shoe'}, page_content='red shoes')]
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self, Unpack

import numpy as np
import numpy.typing as npt
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from vecserve_client import CollectionNotFound, Hit, Point
from vecserve_client._types import IndexSpec, Metric
from vecserve_client.integrations._clients import (
    StoreClients,
    StoreConnection,
    UsesStoreClients,
    candidate_vectors,
)

__all__ = ["VecserveVectorStore", "to_vecserve_filter"]

# Operators that vecserve's filter language has under the same name and meaning.
_SAME_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"})
_LOGICAL = frozenset({"$and", "$or"})


def to_vecserve_filter(filter: Mapping[str, Any], metadata_key: str = "metadata") -> dict[str, Any]:
    """A LangChain metadata filter as a vecserve filter over the points' payloads.

    LangChain's filter dicts are Mongo-style, as vecserve's are: ``{"field": value}``,
    ``{"field": {"$gte": 1}}``, ``$eq $ne $gt $gte $lt $lte $in $nin $exists``, ``$and``
    and ``$or`` over lists of filters, ``$not``, and ``$between: [low, high]`` (both
    included). Field names are metadata keys: they are looked up under ``metadata_key``.

    Raises:
        ValueError: an operator vecserve does not have (``$like``, ``$contains``...), or a
            malformed ``$between``.
    """
    out: dict[str, Any] = {}
    for key, value in filter.items():
        if key in _LOGICAL:
            if not isinstance(value, list):
                raise ValueError(f"{key} takes a list of filters, not {value!r}")
            out[key] = [to_vecserve_filter(part, metadata_key) for part in value]
        elif key == "$not":
            out[key] = to_vecserve_filter(value, metadata_key)
        elif key.startswith("$"):
            raise ValueError(f"unsupported filter operator {key!r} at the top of a filter")
        elif isinstance(value, Mapping) and any(str(k).startswith("$") for k in value):
            out[f"{metadata_key}.{key}"] = _field_condition(value)
        else:
            out[f"{metadata_key}.{key}"] = value
    return out


def _field_condition(condition: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for operator, operand in condition.items():
        if operator in _SAME_OPERATORS:
            out[operator] = operand
        elif operator == "$not":
            out[operator] = _field_condition(operand)
        elif operator == "$between":
            if not isinstance(operand, list | tuple) or len(operand) != 2:
                raise ValueError(f"$between takes [low, high], not {operand!r}")
            out["$gte"], out["$lte"] = operand
        else:
            supported = ", ".join(sorted({*_SAME_OPERATORS, "$not", "$between"}))
            raise ValueError(
                f"vecserve filters have no {operator!r} operator; use one of {supported}"
            )
    return out


def _relevance_from_server_scores(scores: Sequence[float], metric: str) -> npt.NDArray[np.float64]:
    """Cosine similarities to the query, from a server's scores for unit vectors (those
    of a server's embedder): cosine and dot scores are them, l2 distances map onto them."""
    values = np.asarray(scores, dtype=np.float64)
    return 1.0 - values**2 / 2.0 if metric == "l2" else values


def _mmr_over_relevance(
    relevance: npt.NDArray[np.float64],
    vectors: npt.NDArray[np.float32],
    k: int,
    lambda_mult: float,
) -> list[int]:
    """Maximal marginal relevance when the query's vector is not known here (the server
    embedded it) but its similarity to each candidate is."""
    if len(relevance) == 0 or k <= 0:
        return []
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    between = unit @ unit.T
    selected = [int(np.argmax(relevance))]
    while len(selected) < min(k, len(relevance)):
        redundancy = between[:, selected].max(axis=1)
        score = lambda_mult * relevance - (1 - lambda_mult) * redundancy
        score[selected] = -np.inf
        selected.append(int(np.argmax(score)))
    return selected


class VecserveVectorStore(UsesStoreClients, VectorStore):
    """A LangChain vector store over one vecserve collection.

    Args:
        collection_name: the collection; created on the first write when missing.
        embedding: the LangChain embeddings that make the vectors here, or None to have
            the collection's embedder make them on the server.
        embedder: the server's embedder to create a missing collection with (when
            ``embedding`` is None).
        metric: the metric to create a missing collection with.
        index: the index to create a missing collection with.
        text_key: the payload key holding each document's text.
        metadata_key: the payload key holding each document's metadata.
        **connection: ``url`` (and ``api_key``), or ``client`` (for the synchronous
            methods) and ``async_client`` (for the ``a``-prefixed ones); see
            :class:`~vecserve_client.integrations._clients.StoreConnection`.

    Raises:
        ValueError: both ``embedding`` and ``embedder``, or no client and no ``url``.

    Example:
        >>> store = VecserveVectorStore("docs", embeddings, url="http://127.0.0.1:8000")
        >>> ids = store.add_texts(["a text", "another"], [{"n": 1}, {"n": 2}])
        >>> store.similarity_search("text", k=1, filter={"n": {"$gt": 1}})
    """

    def __init__(
        self,
        collection_name: str,
        embedding: Embeddings | None = None,
        *,
        embedder: str | None = None,
        metric: Metric = "cosine",
        index: IndexSpec = "auto",
        text_key: str = "page_content",
        metadata_key: str = "metadata",
        **connection: Unpack[StoreConnection],
    ) -> None:
        if embedding is not None and embedder is not None:
            raise ValueError("give embedding (vectors made here) or embedder (on the server)")
        self._clients = StoreClients(**connection)
        self.collection_name = collection_name
        self._embedding = embedding
        self._embedder = embedder
        self._metric: Metric = metric
        self._index = index
        self.text_key = text_key
        self.metadata_key = metadata_key
        self._created = False

    @property
    def embeddings(self) -> Embeddings | None:
        """The LangChain embeddings in use, or None when the server embeds."""
        return self._embedding

    def close(self) -> None:
        """Close the ``Client`` the store opened from ``url`` (not one it was given)."""
        if self._clients.owned[0] is not None:
            self._clients.owned[0].close()

    async def aclose(self) -> None:
        """Close both clients the store opened from ``url`` (not those it was given)."""
        self.close()
        if self._clients.owned[1] is not None:
            await self._clients.owned[1].close()

    # -- writing -------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store texts, replacing the documents whose ids exist.

        Args:
            texts: the documents' texts.
            metadatas: one metadata dict per text.
            ids: one id per text (None entries get a fresh UUID); fresh UUIDs when None.
            **kwargs: passed to ``Client.upsert`` (``batch_size``, ``parallel``).

        Returns:
            The documents' ids.

        Raises:
            ValueError: ``metadatas`` or ``ids`` not one per text.
        """
        texts, point_ids, payloads = self._points(texts, metadatas, ids)
        if not texts:
            return []
        if self._embedding is not None:
            vectors = np.asarray(self._embedding.embed_documents(texts), dtype=np.float32)
            self._create_collection(vectors.shape[1])
            self.client.upsert(
                self.collection_name, point_ids, vectors, payloads=payloads, **kwargs
            )
        else:
            self._create_collection(None)
            self.client.upsert(
                self.collection_name, point_ids, texts=texts, payloads=payloads, **kwargs
            )
        return point_ids

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store texts, replacing the documents whose ids exist (async).

        See :meth:`add_texts`.
        """
        texts, point_ids, payloads = self._points(texts, metadatas, ids)
        if not texts:
            return []
        client = self.async_client
        if self._embedding is not None:
            embedded = await self._embedding.aembed_documents(texts)
            vectors = np.asarray(embedded, dtype=np.float32)
            await self._acreate_collection(vectors.shape[1])
            await client.upsert(
                self.collection_name, point_ids, vectors, payloads=payloads, **kwargs
            )
        else:
            await self._acreate_collection(None)
            await client.upsert(
                self.collection_name, point_ids, texts=texts, payloads=payloads, **kwargs
            )
        return point_ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete documents by id, or those whose metadata match ``filter=``.

        Args:
            ids: the ids to delete; those that do not exist are ignored.
            **kwargs: ``filter``, a LangChain metadata filter, instead of ``ids``.

        Returns:
            True.

        Raises:
            ValueError: both or neither of ``ids`` and ``filter``.
        """
        point_ids, vecserve_filter = self._deletion(ids, kwargs)
        self._clients.delete(self.collection_name, point_ids, filter=vecserve_filter)
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete documents by id, or those whose metadata match ``filter=`` (async).

        See :meth:`delete`.
        """
        point_ids, vecserve_filter = self._deletion(ids, kwargs)
        await self._clients.adelete(self.collection_name, point_ids, filter=vecserve_filter)
        return True

    # -- reading -------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in that order; missing ids are left out."""
        try:
            points = self.client.get(self.collection_name, list(ids))
        except CollectionNotFound:
            return []
        return [self._document(point) for point in points]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in that order; missing ids are left out (async)."""
        try:
            points = await self.async_client.get(self.collection_name, list(ids))
        except CollectionNotFound:
            return []
        return [self._document(point) for point in points]

    def similarity_search(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest to a text, nearest first.

        Args:
            query: the text.
            k: how many documents.
            filter: a LangChain metadata filter (see :func:`to_vecserve_filter`).
            **kwargs: passed to ``Client.search`` (``params``).

        Returns:
            The documents.
        """
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    async def asimilarity_search(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest to a text, nearest first (async)."""
        found = await self.asimilarity_search_with_score(query, k, filter, **kwargs)
        return [doc for doc, _ in found]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The ``k`` documents nearest to a text with the server's scores (similarity for
        cosine and dot, higher is nearer; distance for l2, lower is nearer)."""
        if self._embedding is not None:
            vector = self._embedding.embed_query(query)
            return self.similarity_search_with_score_by_vector(vector, k, filter, **kwargs)
        hits = self._search(k, filter, kwargs, text=query)
        return [(self._document(hit), hit.score) for hit in hits]

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The ``k`` documents nearest to a text with the server's scores (async)."""
        if self._embedding is not None:
            vector = await self._embedding.aembed_query(query)
            return await self.asimilarity_search_with_score_by_vector(vector, k, filter, **kwargs)
        hits = await self._asearch(k, filter, kwargs, text=query)
        return [(self._document(hit), hit.score) for hit in hits]

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The ``k`` documents nearest to a vector, nearest first."""
        found = self.similarity_search_with_score_by_vector(embedding, k, filter, **kwargs)
        return [doc for doc, _ in found]

    async def asimilarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The ``k`` documents nearest to a vector, nearest first (async)."""
        found = await self.asimilarity_search_with_score_by_vector(embedding, k, filter, **kwargs)
        return [doc for doc, _ in found]

    def similarity_search_with_score_by_vector(
        self,
        embedding: Sequence[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """The ``k`` documents nearest to a vector with the server's scores."""
        hits = self._search(k, filter, kwargs, vector=embedding)
        return [(self._document(hit), hit.score) for hit in hits]

    async def asimilarity_search_with_score_by_vector(
        self,
        embedding: Sequence[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """The ``k`` documents nearest to a vector with the server's scores (async)."""
        hits = await self._asearch(k, filter, kwargs, vector=embedding)
        return [(self._document(hit), hit.score) for hit in hits]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` documents near a text and unlike each other (maximal marginal relevance).

        The ``fetch_k`` nearest are fetched with their vectors and the ``k`` picked here.

        Args:
            query: the text.
            k: how many documents.
            fetch_k: how many candidates to pick from.
            lambda_mult: 1 for relevance only, 0 for diversity only.
            filter: a LangChain metadata filter.
            **kwargs: passed to ``Client.search`` (``params``).

        Returns:
            The documents, in the order picked.
        """
        if self._embedding is not None:
            vector = self._embedding.embed_query(query)
            return self.max_marginal_relevance_search_by_vector(
                vector, k, fetch_k, lambda_mult, filter, **kwargs
            )
        hits = self._search(fetch_k, filter, kwargs, text=query, with_vectors=True)
        return self._pick_by_server_scores(hits, k, lambda_mult)

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` documents near a text and unlike each other (async); see
        :meth:`max_marginal_relevance_search`."""
        if self._embedding is not None:
            vector = await self._embedding.aembed_query(query)
            return await self.amax_marginal_relevance_search_by_vector(
                vector, k, fetch_k, lambda_mult, filter, **kwargs
            )
        hits = await self._asearch(fetch_k, filter, kwargs, text=query, with_vectors=True)
        return self._pick_by_server_scores(hits, k, lambda_mult)

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` documents near a vector and unlike each other (maximal marginal relevance)."""
        hits = self._search(fetch_k, filter, kwargs, vector=embedding, with_vectors=True)
        return self._pick(embedding, hits, k, lambda_mult)

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` documents near a vector and unlike each other (async)."""
        hits = await self._asearch(fetch_k, filter, kwargs, vector=embedding, with_vectors=True)
        return self._pick(embedding, hits, k, lambda_mult)

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A store over ``collection_name`` (a keyword argument) holding these texts.

        Args:
            texts: the texts to add.
            embedding: the LangChain embeddings, or None for the collection's embedder.
            metadatas: one metadata dict per text.
            ids: one id per text.
            **kwargs: the store's other arguments (``collection_name``, ``url``,
                ``client``, ``embedder``...).

        Returns:
            The store.

        Example:
            >>> store = VecserveVectorStore.from_texts(
            ...     ["a", "b"], embeddings, collection_name="docs", url="http://127.0.0.1:8000"
            ... )
        """
        store = cls(embedding=embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A store holding these texts, added through the ``AsyncClient``; see
        :meth:`from_texts`."""
        store = cls(embedding=embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Scores as relevance in [0, 1], higher is nearer: cosine and dot similarities
        (of unit vectors) from [-1, 1], l2 distances (of unit vectors) from [0, 2]."""
        if self._metric == "l2":
            return lambda distance: 1.0 - distance / 2.0
        return lambda similarity: (1.0 + similarity) / 2.0

    # -- shared by the sync and async methods --------------------------------------------

    def _points(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None,
        ids: Sequence[str | None] | None,
    ) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"{len(metadatas)} metadatas for {len(texts)} texts")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        point_ids = [i if i is not None else uuid.uuid4().hex for i in ids or [None] * len(texts)]
        metadata_list: Sequence[Mapping[str, Any]] = metadatas or [{}] * len(texts)
        payloads = [
            {self.text_key: text, self.metadata_key: dict(metadata)}
            for text, metadata in zip(texts, metadata_list, strict=True)
        ]
        return texts, point_ids, payloads

    def _create_collection(self, dim: int | None) -> None:
        """Create the collection on the first write, unless nothing says how: without
        ``embedding`` or ``embedder``, the collection must exist (with an embedder)."""
        if not self._created:
            if dim is not None or self._embedder is not None:
                self.client.create_collection(
                    self.collection_name,
                    dim,
                    metric=self._metric,
                    index=self._index,
                    embedder=self._embedder,
                )
            self._created = True

    async def _acreate_collection(self, dim: int | None) -> None:
        if not self._created:
            if dim is not None or self._embedder is not None:
                await self.async_client.create_collection(
                    self.collection_name,
                    dim,
                    metric=self._metric,
                    index=self._index,
                    embedder=self._embedder,
                )
            self._created = True

    def _deletion(
        self, ids: list[str] | None, kwargs: Mapping[str, Any]
    ) -> tuple[list[str] | None, dict[str, Any] | None]:
        filter = kwargs.get("filter")
        if (ids is None) == (filter is None):
            raise ValueError("give exactly one of ids or filter")
        return ids, None if filter is None else to_vecserve_filter(filter, self.metadata_key)

    def _search_options(
        self, k: int, filter: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        options = {"k": k, **kwargs}
        if filter is not None:
            options["filter"] = to_vecserve_filter(filter, self.metadata_key)
        return options

    def _search(
        self, k: int, filter: Mapping[str, Any] | None, kwargs: Mapping[str, Any], **query: Any
    ) -> list[Hit]:
        options = self._search_options(k, filter, kwargs)
        return self._clients.search(self.collection_name, **query, **options)

    async def _asearch(
        self, k: int, filter: Mapping[str, Any] | None, kwargs: Mapping[str, Any], **query: Any
    ) -> list[Hit]:
        options = self._search_options(k, filter, kwargs)
        return await self._clients.asearch(self.collection_name, **query, **options)

    def _pick(
        self, query: Sequence[float], hits: list[Hit], k: int, lambda_mult: float
    ) -> list[Document]:
        if not hits:
            return []
        picked = maximal_marginal_relevance(
            np.asarray(query, dtype=np.float32), candidate_vectors(hits), lambda_mult, k
        )
        return [self._document(hits[i]) for i in picked]

    def _pick_by_server_scores(self, hits: list[Hit], k: int, lambda_mult: float) -> list[Document]:
        if not hits:
            return []
        vectors = np.stack([hit.vector for hit in hits if hit.vector is not None])
        relevance = _relevance_from_server_scores([hit.score for hit in hits], self._metric)
        return [
            self._document(hits[i]) for i in _mmr_over_relevance(relevance, vectors, k, lambda_mult)
        ]

    def _document(self, point: Point | Hit) -> Document:
        payload = point.payload or {}
        metadata = payload.get(self.metadata_key)
        text = payload.get(self.text_key)
        return Document(
            id=str(point.id),
            page_content=text if isinstance(text, str) else "",
            metadata=metadata if isinstance(metadata, dict) else {},
        )
