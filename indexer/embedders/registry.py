"""The allowlist of embedders a server may load, loaded lazily and shared."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from indexer.embedders.base import Embedder
from indexer.embedders.clip import load_clip
from indexer.embedders.config import EmbedderConfig, EmbedderKind
from indexer.embedders.efficientnet import load_efficientnet_lite0
from indexer.embedders.sentence_transformer import load_sentence_transformer
from indexer.errors import EmbedderNotFound, EmbedderUnavailable

__all__ = ["LOADERS", "EmbedderRegistry"]

_log = logging.getLogger(__name__)

LOADERS: Mapping[EmbedderKind, Callable[[EmbedderConfig], Embedder]] = MappingProxyType(
    {
        "sentence-transformers": load_sentence_transformer,
        "efficientnet-lite0": load_efficientnet_lite0,
        "clip": load_clip,
    }
)
"""The loading function of each embedder kind."""


class EmbedderRegistry:
    """The embedders this server may use, by name; each is loaded on first use, once.

    Names come from the configuration only. A name in a request is looked up here and
    never taken as a path or a model-hub id, so a client cannot make the server load a
    model of its choosing.

    Example:
        >>> registry = EmbedderRegistry(default_embedder_configs())
        >>> registry.get("minilm").embed_texts(["hello"]).shape
        (1, 384)
    """

    def __init__(self, configs: Iterable[EmbedderConfig]) -> None:
        """Build the allowlist.

        Raises:
            ValueError: two configs share a name.
        """
        self._configs: dict[str, EmbedderConfig] = {}
        for config in configs:
            if config.name in self._configs:
                raise ValueError(f"embedder name {config.name!r} is configured twice")
            self._configs[config.name] = config
        # One lock per name: loading one model does not hold up requests for another.
        self._locks = {name: threading.Lock() for name in self._configs}
        self._loaded: dict[str, Embedder] = {}

    def names(self) -> list[str]:
        """The allowed names, sorted."""
        return sorted(self._configs)

    def loaded(self) -> list[str]:
        """The names of the embedders loaded so far, sorted."""
        return sorted(self._loaded)

    def config(self, name: str) -> EmbedderConfig:
        """The configuration of ``name``.

        Raises:
            EmbedderNotFound: ``name`` is not in the allowlist.
        """
        try:
            return self._configs[name]
        except KeyError:
            raise EmbedderNotFound(f"no embedder named {name!r} is configured") from None

    def get(self, name: str) -> Embedder:
        """The embedder called ``name``, loaded on the first call and shared afterwards.

        Concurrent first calls load the model once; the others wait for it. A failed load
        is not remembered, so a fixed folder is picked up by the next call.

        Raises:
            EmbedderNotFound: ``name`` is not in the allowlist.
            EmbedderUnavailable: the model could not be loaded (missing folder, package or
                GPU, unreadable weights); details go to the log.
        """
        config = self.config(name)
        loaded = self._loaded.get(name)
        if loaded is not None:
            return loaded
        with self._locks[name]:
            loaded = self._loaded.get(name)
            if loaded is None:
                loaded = _load(config)
                self._loaded[name] = loaded
        return loaded


def _load(config: EmbedderConfig) -> Embedder:
    try:
        return LOADERS[config.kind](config)
    except EmbedderUnavailable as exc:
        _log.warning("embedder %r is unavailable: %s", config.name, exc.message)
        raise
    except ImportError as exc:
        _log.exception("embedder %r: a package is missing", config.name)
        raise EmbedderUnavailable(
            f"embedder {config.name!r} needs a package that is not installed ({exc.name}); "
            "install vecserve[embed]"
        ) from exc
    except Exception as exc:
        # Bad weights and broken folders fail in many library-specific ways; the client
        # gets a stable error, the operator the traceback.
        _log.exception("embedder %r failed to load", config.name)
        raise EmbedderUnavailable(
            f"embedder {config.name!r} could not be loaded; see the server log"
        ) from exc
