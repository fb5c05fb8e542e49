"""Request and response bodies of the HTTP API (pydantic; they also make the OpenAPI/Swagger page)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StrictFloat

# StrictFloat: JSON numbers only (no "1.0" strings, no booleans); NaN/Infinity are refused later.
Particle = Annotated[
    list[StrictFloat],
    Field(min_length=3, max_length=4, description="[etarel, phirel, ptrel] or [etarel, phirel, ptrel, mask]"),
]
Jet = Annotated[list[Particle], Field(min_length=1, description="the jet's particles, any order")]

EXAMPLE_JETS = [
    [[0.063, 0.055, 0.364], [-0.066, -0.059, 0.124], [-0.065, -0.053, 0.094], [-0.065, -0.052, 0.079]],
    [[0.01, -0.02, 0.61], [0.03, 0.01, 0.22, 1.0], [0.0, 0.0, 0.0, 0.0]],
]


class ClassifyResponse(BaseModel):
    model: str
    model_version: str
    classes: list[str]
    probabilities: list[list[float]] = Field(description="one row per jet, in request order")
    labels: list[str] = Field(description="the most probable class per jet")
