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

from core.liveaccuracy import AccuracyDocument
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


class LiveAccuracy(TypedDict):
    """A version's accuracy on real traffic: answers confirmed correct by feedback."""

    accuracy: Annotated[float, Field(ge=0, le=1, description="correct / total.")]
    correct: int
    total: Annotated[int, Field(ge=1, description="Answers of this version that got feedback.")]
    updated: Annotated[Stamp, Field(description="When the trainer's feedback joiner last updated the figures.")]


class FeatureDrift(TypedDict):
    score: Annotated[float | None, Field(description="Distance from the training data; null below DRIFT_MIN_ROWS.")]
    threshold: float
    drifted: bool


class DriftSnapshot(TypedDict):
    """The pod's drift window after the model agent's last evaluation."""

    updated: Stamp
    version: Annotated[str | None, Field(description="The model version whose reference the window is compared with.")]
    window_rows: Annotated[int, Field(ge=0)]
    features: NotRequired[
        Annotated[
            dict[str, FeatureDrift],
            Field(description="Per feature and `predicted_class`; absent for a model without reference statistics."),
        ]
    ]


class Monitoring(TypedDict):
    """Live accuracy and drift as the pod's model agent last saw them (null: none yet)."""

    version: Annotated[str | None, Field(description="The version this worker serves.")]
    accuracy: Annotated[
        AccuracyDocument | None, Field(description="The live accuracy document of every recent version.")
    ]
    drift: DriftSnapshot | None


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
    live_accuracy: Annotated[
        LiveAccuracy | None, Field(description="The serving version's accuracy from feedback; null without any.")
    ]


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


FeedbackStatus = Literal["accepted", "sampled_out", "late", "duplicate", "not_logged", "unavailable"]


class FeedbackResult(TypedDict):
    """What became of one feedback item (predictor.predlog.feedback)."""

    id: str
    row: int
    status: FeedbackStatus
    reason: NotRequired[Annotated[str, Field(description="Why the item was not accepted.")]]


class FeedbackResponse(TypedDict):
    accepted: Annotated[int, Field(ge=0, description="Items queued for the joiner.")]
    results: Annotated[list[FeedbackResult], Field(description="One per item, in request order.")]


ANSWERS: dict[str, Any] = {
    "TrainingSample": TrainingSample,
    "PredictResponse": PredictResponse, "ApiResponse": ApiResponse, "InferResponse": InferResponse, "Error": Error,
    "V2Error": V2Error, "SwapRecord": SwapRecord, "ModelInfo": ModelInfo, "AdminResult": AdminResult,
    "FeedbackResponse": FeedbackResponse,
    "Monitoring": Monitoring,
}  # fmt: skip


class OpenAPI30(GenerateJsonSchema):
    """JSON Schema as OpenAPI 3.0 reads it: `nullable: true` instead of a `null` type, a one-value `enum` instead of
    `const`, and a map's key pattern as the extension `x-key-pattern` (3.0 has no `patternProperties`)."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        inner = self.generate_inner(schema["schema"])
        return {"allOf": [inner], "nullable": True} if "$ref" in inner else {**inner, "nullable": True}

    def literal_schema(self, schema: core_schema.LiteralSchema) -> JsonSchemaValue:
        result = super().literal_schema(schema)
        if "const" in result:
            result["enum"] = [result.pop("const")]
        return result

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        result = super().dict_schema(schema)
        patterns = result.pop("patternProperties", None)
        if patterns:
            (pattern, values), *_ = patterns.items()
            result.update({"additionalProperties": values, "x-key-pattern": pattern})
        return result


def adapters() -> dict[str, TypeAdapter[Any]]:
    return {name: TypeAdapter(kind) for name, kind in ANSWERS.items()}
