from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def real_tokenizer(settings):  # type: ignore[no-untyped-def]
    from training.features import load_tokenizer

    path = settings.models_dir / settings.model_name
    if not (path / "tokenizer.json").exists():
        pytest.skip("multilingual-e5-small not installed: make model")
    return load_tokenizer(str(path))
