"""Index specifications and search-time parameters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from indexer.errors import (
    InvalidIndexSpec,
    InvalidSearchParams,
    validated,
    validation_message,
)

IndexKind = Literal["auto", "flat", "ivf_flat", "ivf_pq", "hnsw"]
Storage = Literal["float32", "float16", "int8"]


class IndexSpec(BaseModel):
    """What index a collection wants. Anything left as None is chosen from the data.

    ``auto`` serves exactly (flat) while the collection is small and moves to HNSW on the
    CPU or IVF on a GPU once it grows past ``auto_threshold`` points. Trained families
    (IVF) serve from a flat index until there are enough points to train on. The default
    search parameters (``nprobe``, ``ef_search``) are calibrated on the collection's own
    vectors to reach ``target_recall`` at k=10.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: IndexKind = "auto"
    storage: Storage = "float32"
    nlist: int | None = Field(default=None, ge=1, le=1 << 20)
    pq_m: int | None = Field(default=None, ge=1, le=4096)
    pq_bits: int = Field(default=8, ge=4, le=12)
    hnsw_m: int = Field(default=32, ge=4, le=128)
    ef_construction: int = Field(default=128, ge=8, le=4096)
    target_recall: float = Field(default=0.95, gt=0.0, le=1.0)
    auto_threshold: int = Field(default=20_000, ge=1, le=1 << 40)

    @classmethod
    def parse(cls, value: IndexSpec | str | dict[str, Any] | None) -> IndexSpec:
        """Accept a spec, a kind name (``"hnsw"``) or a dict of fields."""
        if value is None:
            return cls()
        if isinstance(value, IndexSpec):
            return value
        try:
            if isinstance(value, str):
                return cls(kind=value)  # type: ignore[arg-type]
            return cls.model_validate(value)
        except ValidationError as exc:
            raise InvalidIndexSpec(validation_message(exc, "value")) from None

    def for_dim(self, dim: int) -> IndexSpec:
        """The spec, if an index of it can be built over ``dim``-dimensional vectors;
        else :class:`InvalidIndexSpec` now rather than a failed build later."""
        if self.pq_m is not None and (self.pq_m > dim or dim % self.pq_m):
            raise InvalidIndexSpec(
                f"pq_m must divide the dimension {dim} (each sub-quantizer takes "
                f"dim / pq_m dimensions), got {self.pq_m}"
            )
        return self


class SearchParams(BaseModel):
    """Per-search knobs. None means the collection's calibrated default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nprobe: int | None = Field(default=None, ge=1, le=65536)
    ef_search: int | None = Field(default=None, ge=1, le=32768)
    exact: bool = False

    @classmethod
    def parse(cls, value: SearchParams | dict[str, Any] | None) -> SearchParams:
        if value is None:
            return DEFAULT_SEARCH_PARAMS  # frozen: one instance serves every search
        return validated(cls, value, InvalidSearchParams, "value")


DEFAULT_SEARCH_PARAMS = SearchParams()
