"""Adapters for the frameworks users already build with, each behind its own extra.

- :mod:`vecserve_client.integrations.langchain`: a LangChain ``VectorStore``
  (``pip install "vecserve-client[langchain]"``).
- :mod:`vecserve_client.integrations.llamaindex`: a LlamaIndex vector store
  (``pip install "vecserve-client[llamaindex]"``).

They talk to the server through :class:`~vecserve_client.Client` and
:class:`~vecserve_client.AsyncClient` only.
"""
