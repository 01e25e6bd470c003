"""Cost of a run in USD, from genai-prices (imported on first use)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=256)
def cost_usd(
    provider_id: str | None,
    model: str,
    input_tokens: int | None,
    output_tokens: int | None,
    batch: bool = False,
) -> float | None:
    """The price of a call, or None when the model's price is unknown (or tokens are).

    ``batch``: the call ran in a provider batch, priced at the provider's batch rates
    (genai-prices' ``processing: batch`` variant; a model without one is priced at its
    standard rates, as genai-prices does).
    """
    if provider_id is None or input_tokens is None or output_tokens is None:
        return None
    from genai_prices import Usage, calc_price

    try:
        price = calc_price(
            Usage(input_tokens=input_tokens, output_tokens=output_tokens),
            model_ref=model,
            provider_id=provider_id,
            price_context={"processing": "batch"} if batch else None,
        )
    except LookupError:
        return None
    return float(price.total_price)
