from tests.model.conftest import tiny  # noqa: F401  (the tiny GGUF fixture, shared)
