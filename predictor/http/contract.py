"""The HTTP request contract as typed models: they validate request bodies straight from JSON bytes and are the
schemas of the OpenAPI document (predictor.http.openapi), so the two cannot drift.

A measurement is a JSON number (never a boolean or a string), finite, 0..MAX_CM cm. An instance is an object of the
four named features or a list of four numbers in FEATURES order. MAX_BATCH_SIZE comes from the settings, so the
batch-carrying models are built per limit (`Contract.build`, cached). Rules JSON Schema cannot state (a V2 tensor's
data agreeing with its shape, binary sizes) are checked by predictor.http.v2 after the model.

Feedback (POST /v1/feedback) is one item or ``{"feedback": [items]}`` of at most FEEDBACK_MAX_ITEMS (`feedback`,
cached per limit); a label is a class name in any spelling the CSV schema accepts (core.csvscan.canonical_label:
`Iris-virginica`, ` VIRGINICA `) or a class index, and validates to the canonical name.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired, cast

from pydantic import (
    AfterValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Strict,
    StrictInt,
    StrictStr,
    Tag,
    TypeAdapter,
    ValidationInfo,
)
from pydantic import with_config as _with_config
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from core.csvscan import canonical_label
from core.iris import CLASSES, FEATURES, MAX_CM
from predictor.predlog.ids import MAX_LENGTH

OUTPUTS = ("predict", "predict_proba")
"""The V2 outputs of the model, in answer order."""
ROW = "list"
"""Union tag of an instance given as a list of four numbers (its positions are the FEATURES)."""
NAMED = "named"
"""Union tag of an instance given as an object of features."""
VALUE = "value"
"""Union tag of one number of a flat (row-major) V2 tensor."""
BATCH, SINGLE = "batch", "single"
TAGS = frozenset({ROW, NAMED, VALUE, BATCH, SINGLE})

Measurement = Annotated[
    float, Strict(), Field(ge=0, le=MAX_CM, allow_inf_nan=False, description="Centimetres.", title="Measurement")
]
InstanceList = Annotated[
    list[Measurement],
    Field(
        min_length=len(FEATURES),
        max_length=len(FEATURES),
        description=f"The four measurements in order: {', '.join(FEATURES)}.",
    ),
]
forbid_extra = _with_config(ConfigDict(extra="forbid"))


@forbid_extra
class InstanceObject(TypedDict):
    """The four named measurements (cm), nothing else."""

    sepal_length: Measurement
    sepal_width: Measurement
    petal_length: Measurement
    petal_width: Measurement


def _kind(value: Any) -> str | None:
    return NAMED if type(value) is dict else ROW if type(value) is list else None


Instance = Annotated[
    Annotated[InstanceObject, Tag(NAMED)] | Annotated[InstanceList, Tag(ROW)],
    Discriminator(
        _kind,
        custom_error_type="instance_kind",
        custom_error_message=f"expected an object of features or a list of {len(FEATURES)} numbers",
    ),
]


Scalar = str | bool | int | float


def _scalar(value: Any) -> Scalar:
    if type(value) in (str, bool, int) or (type(value) is float and math.isfinite(value)):
        return cast(Scalar, value)
    raise PydanticCustomError("parameter", "expected a string, number or boolean")


Parameter = Annotated[Scalar, PlainValidator(_scalar, json_schema_input_type=Scalar)]
Parameters = Annotated[dict[str, Parameter], Field(description="OIP parameters: string, number or boolean values.")]


def _data_kind(value: Any) -> str:
    return ROW if type(value) is list else VALUE


DataItem = Annotated[
    Annotated[Measurement, Tag(VALUE)] | Annotated[InstanceList, Tag(ROW)],
    Discriminator(_data_kind),
]


def _shape(shape: list[int], info: ValidationInfo) -> list[int]:
    """[N, 4] with 1 <= N <= MAX_BATCH_SIZE (the validation context's `max_batch_size`)."""
    limit = (info.context or {}).get("max_batch_size", 2**63)
    if shape[1] != len(FEATURES):
        raise PydanticCustomError("shape", f"expected [N, {len(FEATURES)}]")
    if not 1 <= shape[0] <= limit:
        raise PydanticCustomError("batch_size", f"batch size must be 1..{limit} (MAX_BATCH_SIZE)")
    return shape


LABEL_REASON = f"expected a class name ({', '.join(CLASSES)}) or a class index 0..{len(CLASSES) - 1}"
MAX_ROW = 1_000_000
"""Largest row index a feedback item may name (its prediction's batch was at most MAX_BATCH_SIZE rows)."""
FEEDBACK_BODY = 'expected a feedback item {"id", "label", "row"} or {"feedback": [items]}'


def _label(value: Any) -> str:
    """The canonical class name of a label: a name in a CSV spelling, or an index into CLASSES."""
    if type(value) is int and 0 <= value < len(CLASSES):
        return CLASSES[value]
    if type(value) is str and len(value) <= 64 and (name := canonical_label(value)) is not None:
        return name
    raise PydanticCustomError("label", LABEL_REASON)


Label = Annotated[
    str,
    Field(description="A class name in a spelling the CSV schema accepts, or a class index; stored as the name."),
    PlainValidator(
        _label,
        json_schema_input_type=Annotated[str, Field(description="A class name, e.g. virginica or Iris-virginica.")]
        | Annotated[int, Field(ge=0, le=len(CLASSES) - 1, description="A class index (0 setosa ... 2 virginica).")],
    ),
]


CUSTOM_ERRORS = frozenset({"shape", "batch_size", "parameter", "label", "feedback_body"})
"""Error types raised here with the message a client is told as is."""


@_with_config(ConfigDict(extra="forbid", json_schema_extra={"required": ["name", "shape", "datatype", "data"]}))
class InputTensor(TypedDict):
    """One input tensor [N, 4]; `data` is N*4 numbers row-major or N rows of 4 (binary mode sends none)."""

    name: StrictStr
    shape: Annotated[list[StrictInt], Field(min_length=2, max_length=2), AfterValidator(_shape)]
    datatype: Literal["FP32", "FP64"]
    parameters: NotRequired[Parameters]
    data: NotRequired[Annotated[list[DataItem], Field(min_length=1)]]


@forbid_extra
class RequestedOutput(TypedDict):
    """An output to answer, with its parameters (`binary_data`)."""

    name: Literal["predict", "predict_proba"]
    parameters: NotRequired[Parameters]


@forbid_extra
class InferRequest(TypedDict):
    """Open Inference Protocol V2 inference request: exactly one input tensor."""

    id: NotRequired[StrictStr]
    model_name: NotRequired[StrictStr]
    """KServe's REST client repeats the model name of the URL here; it is not otherwise read."""
    parameters: NotRequired[Parameters]
    inputs: Annotated[list[InputTensor], Field(min_length=1, max_length=1)]
    outputs: NotRequired[Annotated[list[RequestedOutput], Field(min_length=1)]]


@forbid_extra
class PinRequest(TypedDict):
    """The model version to pin."""

    version: Annotated[StrictStr, Field(pattern=r"^\d{8}T\d{12}Z$")]


@forbid_extra
class FeedbackItem(TypedDict):
    """The true class of one instance of a logged prediction."""

    id: Annotated[
        StrictStr,
        Field(
            pattern=f"^[!-~]{{1,{MAX_LENGTH}}}$",
            description="The prediction's request id, as its answer gave it (X-Request-Id, or the V2 `id`).",
        ),
    ]
    label: Label
    row: NotRequired[
        Annotated[
            StrictInt, Field(ge=0, le=MAX_ROW, description="The instance's index in that prediction's batch (0).")
        ]
    ]


def _feedback_kind(value: Any) -> str | None:
    if type(value) is not dict:
        return None
    return BATCH if "feedback" in value else SINGLE


@functools.cache
def feedback(limit: int) -> TypeAdapter[Any]:
    """The validator of a POST /v1/feedback body with at most `limit` (FEEDBACK_MAX_ITEMS) items."""

    @forbid_extra
    class FeedbackBatch(TypedDict):
        """Several labels in one request, answered in order."""

        feedback: Annotated[list[FeedbackItem], Field(min_length=1, max_length=limit)]

    body = Annotated[
        Annotated[FeedbackItem, Tag(SINGLE)] | Annotated[FeedbackBatch, Tag(BATCH)],
        Discriminator(_feedback_kind, custom_error_type="feedback_body", custom_error_message=FEEDBACK_BODY),
    ]
    return TypeAdapter(body)


@dataclass(frozen=True)
class Contract:
    """The validators of the request bodies for one MAX_BATCH_SIZE."""

    predict: TypeAdapter[Any]
    api: TypeAdapter[Any]
    infer: TypeAdapter[InferRequest]
    pin: TypeAdapter[PinRequest]

    @staticmethod
    @functools.cache
    def build(limit: int) -> Contract:
        batch = Field(min_length=1, max_length=limit)

        @forbid_extra
        class PredictRequest(TypedDict):
            """Instances to predict, all answered by one model."""

            instances: Annotated[list[Instance], batch]

        def api_kind(value: Any) -> str | None:
            if type(value) is not list:
                return None
            return BATCH if value and type(value[0]) is list else SINGLE

        api = Annotated[
            Annotated[InstanceList, Tag(SINGLE)] | Annotated[list[InstanceList], batch, Tag(BATCH)],
            Discriminator(
                api_kind,
                custom_error_type="api_body",
                custom_error_message=f"expected a list of {len(FEATURES)} numbers or a list of such lists",
            ),
        ]
        return Contract(
            TypeAdapter(PredictRequest), TypeAdapter(api), TypeAdapter(InferRequest), TypeAdapter(PinRequest)
        )
