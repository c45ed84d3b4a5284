"""TensorBoard event files written without torch: the sweep's own run, `_sweep` (its summary and
search figures, the HParams experiment and the settings' sessions), which a sweep's end and
`python -m cnnexp.summary` write — a summary reads records and draws, so it need not pay the
seconds that importing torch costs. The records are TensorBoard's own protobufs, the ones torch's
SummaryWriter writes; a run's own events stay with Lightning's logger (cnnexp.tracking.board).
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

SWEEP_RUN = "_sweep"  # the sweep's own TensorBoard run: summary figure, HParams experiment


class Events:
    """One new event file in `folder`; `with Events(folder) as events:` closes it."""

    def __init__(self, folder: Path) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._writer = EventFileWriter(str(folder))

    def summary(self, summary, step: int = 0) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        self._writer.add_event(Event(wall_time=time.time(), step=step, summary=summary))

    def scalar(self, tag: str, value: float, step: int = 0) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        self.summary(Summary(value=[Summary.Value(tag=tag, simple_value=float(value))]), step)

    def figure(self, tag: str, figure, step: int = 0) -> None:
        """A matplotlib figure as a PNG image (cnnexp.core.figures, at the one DPI), then closed."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        from cnnexp.core.figures import png as as_png

        png = as_png(figure)
        width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR
        image = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)  # RGBA
        self.summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> "Events":
        return self

    def __exit__(self, *_) -> None:
        self.close()


def hparams(values: Mapping[str, Any], metrics: Sequence[str],
            domains: Mapping[str, List[Any]] | None = None, ended: str = "STATUS_SUCCESS") -> Tuple[Any, Any, Any]:
    """(experiment, session start, session end) summaries for TensorBoard's HParams plugin: the
    keys with their types (and discrete domains), the metrics' tags, one session's values, status
    success (or `ended`) — as torch.utils.tensorboard.summary.hparams builds them."""
    from google.protobuf import struct_pb2
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    def kind(v) -> Tuple[str, str]:  # a bool is a number, as the runs' own sessions (torch's) log it
        return ("number_value", "DATA_TYPE_FLOAT64") if isinstance(v, (int, float)) else \
            ("string_value", "DATA_TYPE_STRING")

    start, infos = plugin_data_pb2.SessionStartInfo(), []
    for key, value in values.items():
        if value is None:
            continue
        field, data_type = kind(value)
        setattr(start.hparams[key], field, value if field != "string_value" else str(value))
        domain = None
        if key in (domains or {}):
            domain = struct_pb2.ListValue(values=[struct_pb2.Value(**{kind(d)[0]: d}) for d in domains[key]])
        infos.append(api_pb2.HParamInfo(name=key, type=api_pb2.DataType.Value(data_type), domain_discrete=domain))
    experiment = api_pb2.Experiment(hparam_infos=infos,
                                    metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m)) for m in metrics])
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value(ended))  # STATUS_FAILURE: a run that did not train

    def wrapped(tag: str, **content) -> Summary:
        data = plugin_data_pb2.HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **content)
        plugin = SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=data.SerializeToString())
        return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])

    return (wrapped(metadata.EXPERIMENT_TAG, experiment=experiment),
            wrapped(metadata.SESSION_START_INFO_TAG, session_start_info=start),
            wrapped(metadata.SESSION_END_INFO_TAG, session_end_info=end))

