"""The HTTP answers as typed models: the OpenAPI document's response schemas are generated from them (the routes build
plain dicts of these shapes; schemathesis checks every answer against the document).

OpenAPI 3.0 has no `null` type, so `OpenAPI30` writes an optional value as `nullable: true`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema
from typing_extensions import TypedDict

from core.states import SwapOutcome, SwapTrigger
from core.training_sample import MAX_POINTS

Species = Literal["setosa", "versicolor", "virginica"]
Stamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class Probabilities(TypedDict):
    """Probability per species (CLASSES order)."""

    setosa: float
    versicolor: float
    virginica: float


class Prediction(TypedDict):
    species: Species
    class_id: Annotated[int, Field(ge=0, le=2)]
    probabilities: Probabilities


class PredictResponse(TypedDict):
    model_version: str
    predictions: list[Prediction]


ApiResponse = Annotated[
    str,
    Field(pattern=r"^\[[0-2](, [0-2])*\]$", description='Class ids of iris.target as a JSON string, e.g. "[0]".'),
]


class OutputTensor(TypedDict):
    name: Literal["predict", "predict_proba"]
    shape: list[int]
    datatype: Literal["INT64", "FP64"]
    data: list[float]


class InferResponse(TypedDict):
    model_name: str
    model_version: str
    id: Annotated[str, Field(description="The request's id: the body's `id`, else X-Request-Id, else a new one.")]
    outputs: list[OutputTensor]


class ErrorBody(TypedDict):
    code: str
    message: str
    details: Annotated[Any, Field(description="null, or an object such as {field, reason}.")]


class Error(TypedDict):
    error: ErrorBody


class V2Error(TypedDict):
    error: str


class SwapRecord(TypedDict):
    """What became of one offered artifact."""

    version: str | None
    trigger: SwapTrigger
    outcome: SwapOutcome
    reason: str | None
    duration_s: float
    at: Stamp
    object: str | None
    message: Annotated[str | None, Field(description="Why a load was rejected or failed.")]


class ModelInfo(TypedDict):
    model_version: str | None
    lineage: Annotated[dict[str, Any] | None, Field(description="Lineage of the serving artifact.")]
    object: NotRequired[str | None]
    generation: NotRequired[int | None]
    loaded_at: Stamp | None
    loaded_trigger: str | None
    pinned: str | None
    ready: bool
    history: list[SwapRecord]


class TrainingSample(TypedDict):
    """Rows of the serving model's training data (core.training_sample), for the page's petal scatter."""

    version: str
    features: Annotated[list[str], Field(description="The measurements of each point, in order (cm).")]
    classes: Annotated[list[Species], Field(description="Species by class index.")]
    points: Annotated[
        list[Annotated[list[float], Field(min_length=3, max_length=3)]],
        Field(max_length=MAX_POINTS, description="[petal_length, petal_width, class_index] per row, evenly spaced."),
    ]


class AdminResult(TypedDict):
    model_version: str | None
    pinned: str | None
    record: SwapRecord | None


ANSWERS: dict[str, Any] = {
    "TrainingSample": TrainingSample,
    "PredictResponse": PredictResponse, "ApiResponse": ApiResponse, "InferResponse": InferResponse, "Error": Error,
    "V2Error": V2Error, "SwapRecord": SwapRecord, "ModelInfo": ModelInfo, "AdminResult": AdminResult,
}  # fmt: skip


class OpenAPI30(GenerateJsonSchema):
    """JSON Schema as OpenAPI 3.0 reads it: `nullable: true` instead of a `null` type."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        inner = self.generate_inner(schema["schema"])
        return {"allOf": [inner], "nullable": True} if "$ref" in inner else {**inner, "nullable": True}


def adapters() -> dict[str, TypeAdapter[Any]]:
    return {name: TypeAdapter(kind) for name, kind in ANSWERS.items()}
