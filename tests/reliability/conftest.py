"""Fixtures shared by the reliability suite."""

from __future__ import annotations

import pytest

import pl_magic
from tests.reliability.catalogue import PROMPTS


@pytest.fixture
def catalogue_prompts(openai_env, not_on_google_cloud) -> None:
    """The registry the bad-input catalogue runs against (see ``catalogue.PROMPTS``)."""
    for name, template, metadata, labels, *more in PROMPTS:
        pl_magic.publish(
            {
                "prompt_name": name,
                "prompt_template": template,
                "metadata": metadata,
                "release_labels": labels,
                **(more[0] if more else {}),  # other fields of the body (provider_base_url)
            }
        )
