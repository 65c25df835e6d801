"""A LlamaIndex vector store over a vecserve collection (``vecserve-client[llamaindex]``).

Each node is one point: its id is the node's id, its vector the node's embedding, and its
payload the node's metadata (top-level, so that filters reach it) plus LlamaIndex's own
keys (``_node_content``, ``_node_type``, ``ref_doc_id``...) that rebuild the node.

>>> from llama_index.core import StorageContext, VectorStoreIndex
>>> from vecserve_client.integrations.llamaindex import VecserveVectorStore
>>> store = VecserveVectorStore(collection_name="docs", url="http://127.0.0.1:8000")
>>> index = VectorStoreIndex.from_documents(
...     documents, storage_context=StorageContext.from_defaults(vector_store=store)
... )
>>> index.as_retriever(similarity_top_k=3).retrieve("what is vecserve?")
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Unpack

import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from vecserve_client import CollectionNotFound, Hit, Point
from vecserve_client._types import IndexSpec, Metric
from vecserve_client.integrations._clients import (
    StoreClients,
    StoreConnection,
    UsesStoreClients,
    candidate_vectors,
)

__all__ = ["VecserveVectorStore", "to_vecserve_filter"]

_COMPARISONS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    # "Contains any" of a list: vecserve's $in matches an array holding any of the values.
    FilterOperator.ANY: "$in",
    # "Contains" a value: equality matches an array holding the value.
    FilterOperator.CONTAINS: "$eq",
}
_QUERY_MODES = (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR)
# How many candidates an MMR query fetches per result wanted, as LlamaIndex's own stores do.
_MMR_PREFETCH_FACTOR = 4


def to_vecserve_filter(filters: MetadataFilters) -> dict[str, Any] | None:
    """LlamaIndex ``MetadataFilters`` as a vecserve filter over the points' payloads, or
    None when they hold no condition (every point matches).

    Operators ``==, !=, >, >=, <, <=, in, nin, any, all, contains`` and the conditions
    ``and``, ``or`` and ``not`` (none of the filters holds) map onto vecserve's language.

    Raises:
        ValueError: an operator vecserve cannot express (``text_match``, ``is_empty``).
    """
    parts = [
        part
        for f in filters.filters
        if (part := to_vecserve_filter(f) if isinstance(f, MetadataFilters) else _condition(f))
    ]
    if not parts:
        return None
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.OR:
        return {"$or": parts}
    if condition == FilterCondition.NOT:
        return {"$not": {"$or": parts}}
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _condition(filter: MetadataFilter) -> dict[str, Any]:
    operator = filter.operator
    if operator == FilterOperator.ALL:
        values = filter.value if isinstance(filter.value, list) else [filter.value]
        return {"$and": [{filter.key: {"$eq": value}} for value in values]}
    if operator not in _COMPARISONS:
        supported = ", ".join(sorted(op.value for op in (*_COMPARISONS, FilterOperator.ALL)))
        raise ValueError(
            f"vecserve filters cannot express the {operator.value!r} operator; "
            f"use one of {supported}"
        )
    return {filter.key: {_COMPARISONS[operator]: filter.value}}


class VecserveVectorStore(UsesStoreClients, BasePydanticVectorStore):
    """A LlamaIndex vector store over one vecserve collection.

    Nodes come with their embeddings (LlamaIndex's embedding model makes them); the
    collection is created with their dimension on the first write when missing.

    Args:
        collection_name: the collection.
        metric: the metric to create a missing collection with.
        index: the index to create a missing collection with.
        **connection: ``url`` (and ``api_key``), or ``client`` (for the synchronous
            methods) and ``async_client`` (for the asynchronous ones); see
            :class:`~vecserve_client.integrations._clients.StoreConnection`.

    Raises:
        ValueError: no client and no ``url``.

    Example:
        >>> store = VecserveVectorStore(collection_name="docs", url="http://127.0.0.1:8000")
        >>> store.add(nodes)
        >>> store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=3))
    """

    stores_text: bool = True
    flat_metadata: bool = False

    collection_name: str
    metric: Metric = "cosine"
    index: IndexSpec = "auto"

    _clients: StoreClients = PrivateAttr()
    _created: bool = PrivateAttr(default=False)

    def __init__(
        self,
        collection_name: str,
        *,
        metric: Metric = "cosine",
        index: IndexSpec = "auto",
        **connection: Unpack[StoreConnection],
    ) -> None:
        # mypy (without pydantic's plugin) sees only the base class's fields.
        super().__init__(  # type: ignore[call-arg]
            collection_name=collection_name, metric=metric, index=index
        )
        self._clients = StoreClients(**connection)

    @classmethod
    def class_name(cls) -> str:
        return "VecserveVectorStore"

    # -- writing -------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Store nodes with their embeddings, replacing those whose ids exist.

        Args:
            nodes: the nodes, each with its embedding.
            **add_kwargs: passed to ``Client.upsert`` (``batch_size``, ``parallel``).

        Returns:
            The nodes' ids.

        Raises:
            ValueError: a node has no embedding.
        """
        if not nodes:
            return []
        ids, vectors, payloads = _points(nodes)
        if not self._created:
            self.client.create_collection(
                self.collection_name, vectors.shape[1], metric=self.metric, index=self.index
            )
            self._created = True
        self.client.upsert(self.collection_name, ids, vectors, payloads=payloads, **add_kwargs)
        return ids

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Store nodes with their embeddings through the ``AsyncClient``; see :meth:`add`."""
        if not nodes:
            return []
        ids, vectors, payloads = _points(nodes)
        client = self.async_client
        if not self._created:
            await client.create_collection(
                self.collection_name, vectors.shape[1], metric=self.metric, index=self.index
            )
            self._created = True
        await client.upsert(self.collection_name, ids, vectors, payloads=payloads, **kwargs)
        return ids

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of a source document.

        Args:
            ref_doc_id: the document's id (the nodes' ``ref_doc_id``).
        """
        self._clients.delete(self.collection_name, None, filter={"ref_doc_id": ref_doc_id})

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of a source document through the ``AsyncClient``."""
        await self._clients.adelete(self.collection_name, None, filter={"ref_doc_id": ref_doc_id})

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete nodes by id, or those whose metadata match ``filters``."""
        ids, vecserve_filter = _selection(node_ids, filters)
        self._clients.delete(self.collection_name, ids, filter=vecserve_filter)

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete nodes by id, or those whose metadata match ``filters`` (async)."""
        ids, vecserve_filter = _selection(node_ids, filters)
        await self._clients.adelete(self.collection_name, ids, filter=vecserve_filter)

    def clear(self) -> None:
        """Delete every node: drop the collection (the next write creates it again)."""
        with contextlib.suppress(CollectionNotFound):
            self.client.delete_collection(self.collection_name)
        self._created = False

    async def aclear(self) -> None:
        """Delete every node through the ``AsyncClient``; see :meth:`clear`."""
        with contextlib.suppress(CollectionNotFound):
            await self.async_client.delete_collection(self.collection_name)
        self._created = False

    # -- reading -------------------------------------------------------------------------

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """Nodes by id (in that order, missing ones left out), or those matching ``filters``."""
        try:
            if node_ids is not None:
                points = self.client.get(self.collection_name, node_ids)
            else:
                vecserve_filter = to_vecserve_filter(filters) if filters else None
                points = list(self.client.scroll(self.collection_name, filter=vecserve_filter))
        except CollectionNotFound:
            return []
        return [_node(point) for point in points]

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """Nodes by id, or those matching ``filters`` (async)."""
        client = self.async_client
        try:
            if node_ids is not None:
                points = await client.get(self.collection_name, node_ids)
            else:
                vecserve_filter = to_vecserve_filter(filters) if filters else None
                scroll = client.scroll(self.collection_name, filter=vecserve_filter)
                points = [point async for point in scroll]
        except CollectionNotFound:
            return []
        return [_node(point) for point in points]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The nodes nearest to the query's embedding, in ``default`` or ``mmr`` mode.

        Args:
            query: the query: its embedding, ``similarity_top_k``, ``filters`` and
                ``doc_ids`` (restricting to those documents), ``mode`` and, for MMR,
                ``mmr_threshold`` (1 for relevance only, 0 for diversity only).
            **kwargs: ``mmr_prefetch_k``, how many candidates MMR picks from.

        Returns:
            The nodes with their similarities and ids, nearest (or picked) first.

        Raises:
            NotImplementedError: another mode (``hybrid`` among them).
            ValueError: no query embedding, or a filter vecserve cannot express.
        """
        vector, k, options = _search(query, kwargs)
        hits = self._clients.search(self.collection_name, vector=vector, k=k, **options)
        return _result(query, hits)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The nodes nearest to the query's embedding, through the ``AsyncClient``; see
        :meth:`query`."""
        vector, k, options = _search(query, kwargs)
        hits = await self._clients.asearch(self.collection_name, vector=vector, k=k, **options)
        return _result(query, hits)


# -- shared by the sync and async methods ----------------------------------------------------


def _points(nodes: Sequence[BaseNode]) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    ids = [node.node_id for node in nodes]
    vectors = np.asarray([node.get_embedding() for node in nodes], dtype=np.float32)
    payloads = [node_to_metadata_dict(node, remove_text=False) for node in nodes]
    return ids, vectors, payloads


def _selection(
    node_ids: list[str] | None, filters: MetadataFilters | None
) -> tuple[list[str] | None, dict[str, Any] | None]:
    vecserve_filter = to_vecserve_filter(filters) if filters else None
    if (node_ids is None) == (vecserve_filter is None):
        raise ValueError(
            "give exactly one of node_ids or filters with a condition (clear() empties the store)"
        )
    return node_ids, vecserve_filter


def _search(
    query: VectorStoreQuery, kwargs: dict[str, Any]
) -> tuple[list[float], int, dict[str, Any]]:
    """The search that answers ``query``: its vector, k and the other options."""
    if query.mode not in _QUERY_MODES:
        raise NotImplementedError(
            f"vecserve's LlamaIndex store has no {query.mode.value!r} query mode "
            "(hybrid search is not there yet); use 'default' or 'mmr'"
        )
    if query.query_embedding is None:
        raise ValueError("vecserve's LlamaIndex store queries by embedding: give one")
    if query.node_ids:
        raise ValueError("vecserve's LlamaIndex store cannot restrict a query to node_ids")
    parts = []
    if query.filters is not None and (metadata := to_vecserve_filter(query.filters)):
        parts.append(metadata)
    if query.doc_ids:
        parts.append({"ref_doc_id": {"$in": list(query.doc_ids)}})
    options: dict[str, Any] = {}
    if parts:
        options["filter"] = parts[0] if len(parts) == 1 else {"$and": parts}
    k = query.similarity_top_k
    if query.mode == VectorStoreQueryMode.MMR:
        k = int(kwargs.get("mmr_prefetch_k") or k * _MMR_PREFETCH_FACTOR)
        options["with_vectors"] = True
    return query.query_embedding, k, options


def _result(query: VectorStoreQuery, hits: list[Hit]) -> VectorStoreQueryResult:
    if query.mode == VectorStoreQueryMode.MMR and hits:
        assert query.query_embedding is not None
        similarities, picked = get_top_k_mmr_embeddings(
            query.query_embedding,
            candidate_vectors(hits),
            similarity_top_k=query.similarity_top_k,
            embedding_ids=list(range(len(hits))),
            mmr_threshold=query.mmr_threshold,
        )
        hits = [hits[i] for i in picked]
    else:
        similarities = [hit.score for hit in hits]
    return VectorStoreQueryResult(
        nodes=[_node(hit) for hit in hits],
        similarities=list(similarities),
        ids=[str(hit.id) for hit in hits],
    )


def _node(point: Point | Hit) -> BaseNode:
    return metadata_dict_to_node(point.payload or {})
