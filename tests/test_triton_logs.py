"""Triton's output as log events (pattern_tts/triton_logs.py), on lines tritonserver 2.51 printed."""

from __future__ import annotations

import json
import logging

from pattern_tts.logs import JsonFormatter
from pattern_tts.triton_logs import LogEvent, TritonLogParser

# A CPU start, a bad request and a stop, as tritonserver and its Python stubs wrote them (trimmed).
STARTUP = """\
I1126 16:20:04.249216 26425 cuda_memory_manager.cc:117] "CUDA memory pool disabled"
E1126 16:20:04.249329 26425 server.cc:241] "CudaDriverHelper has not been initialized."
I1126 16:20:04.250543 26425 model_lifecycle.cc:472] "loading: g2p:1"
/venv/torch/nn/modules/rnn.py:1011: UserWarning: dropout option adds dropout after all but last recurrent layer
  super().__init__("LSTM", *args, **kwargs)
I1126 16:20:21.619529 26425 model.py:107] "kokoro: loaded on cpu in 1.0 s (threads=2, allocator=jemalloc)"
I1126 16:20:21.619551 26425 server.cc:604] \n\
+------------------+------+
| Repository Agent | Path |
+------------------+------+
+------------------+------+

I1126 16:20:21.619819 26425 server.cc:674] \n\
+--------+---------+--------+
| Model  | Version | Status |
+--------+---------+--------+
| g2p    | 1       | READY  |
| kokoro | 1       | READY  |
+--------+---------+--------+

Error: Failed to initialize NVML
W1126 16:20:21.621560 26425 metrics.cc:798] "DCGM unable to start: DCGM initialization error"
I1126 16:20:21.625828 26425 grpc_server.cc:2558] "Started GRPCInferenceService at 127.0.0.1:18001"
W1126 16:20:52.982600 26425 model.py:140] "kokoro: bad request: symbols not in Kokoro's vocabulary: '123XZ'"
Signal (15) received.
I1126 16:24:45.697Z 26425 server.cc:305] not glog: the time has a Z
"""


def parse(text: str, without_gpu: bool = True) -> list[LogEvent]:
    parser = TritonLogParser(without_gpu=without_gpu)
    events = [event for line in text.splitlines(keepends=True) for event in parser.feed(line)]
    return events + parser.close()


def test_every_event_of_a_start_is_one_line_with_its_level_and_source() -> None:
    events = parse(STARTUP)
    assert [(logging.getLevelName(e.level), e.msg) for e in events] == [
        ("INFO", "CUDA memory pool disabled"),
        ("INFO", "CudaDriverHelper has not been initialized."),  # expected without a GPU
        ("INFO", "loading: g2p:1"),
        ("WARNING", "UserWarning: dropout option adds dropout after all but last recurrent layer"),
        ("INFO", "kokoro: loaded on cpu in 1.0 s (threads=2, allocator=jemalloc)"),
        ("INFO", "Model | Version | Status"),  # the empty repository-agent table is left out
        ("ERROR", "Error: Failed to initialize NVML"),
        ("WARNING", "DCGM unable to start: DCGM initialization error"),
        ("INFO", "Started GRPCInferenceService at 127.0.0.1:18001"),
        ("WARNING", "kokoro: bad request: symbols not in Kokoro's vocabulary: '123XZ'"),
        ("INFO", "Signal (15) received."),
        ("INFO", "I1126 16:24:45.697Z 26425 server.cc:305] not glog: the time has a Z"),
    ]
    assert events[2].fields == {"src": "model_lifecycle.cc:472"}
    assert events[3].fields == {"src": "/venv/torch/nn/modules/rnn.py:1011"}
    assert events[5].fields["table"] == [
        {"Model": "g2p", "Version": "1", "Status": "READY"},
        {"Model": "kokoro", "Version": "1", "Status": "READY"},
    ]
    formatter = JsonFormatter()
    for event in events:
        record = logging.makeLogRecord({"name": "triton", "levelno": event.level, "msg": event.msg, **event.fields})
        line = formatter.format(record)
        assert "\n" not in line
        assert json.loads(line)["msg"] == event.msg


def test_the_cuda_driver_error_stays_an_error_where_a_gpu_is_expected() -> None:
    line = 'E1126 16:20:04.249329 26425 server.cc:241] "CudaDriverHelper has not been initialized."\n'
    assert parse(line, without_gpu=False)[0].level == logging.ERROR
    assert parse(line, without_gpu=True)[0].level == logging.INFO


def test_a_model_load_failure_keeps_its_escaped_lines_in_one_message() -> None:
    line = (
        "E1126 16:20:10.1 26425 model_lifecycle.cc:642] \"failed to load 'kokoro' version 1: Internal: "
        'FileNotFoundError: /models/config.json is missing\\n\\nAt:\\n  /opt/model.py(81): initialize\\n"\n'
    )
    (event,) = parse(line)
    assert event.level == logging.ERROR
    first_line = "failed to load 'kokoro' version 1: Internal: FileNotFoundError: /models/config.json is missing"
    assert event.msg.split("\n")[0] == first_line


def test_a_stub_traceback_is_one_error_event_that_names_the_exception() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "/opt/model.py", line 81, in initialize\n'
        "    self.engine = KokoroEngine(weights)\n"
        "RuntimeError: out of memory\n"
        "I1126 16:20:21.6 26425 model_lifecycle.cc:839] \"successfully loaded 'g2p'\"\n"
    )
    events = parse(text)
    assert [e.level for e in events] == [logging.ERROR, logging.INFO]
    assert events[0].msg == "Traceback (most recent call last): ... RuntimeError: out of memory"
    assert events[0].fields["frames"][0] == 'File "/opt/model.py", line 81, in initialize'


def test_output_that_ends_inside_a_table_still_gives_its_event() -> None:
    text = "I1126 16:20:21.619819 26425 server.cc:674] \n| Model | Status |\n| kokoro | READY |\n"
    (event,) = parse(text)
    assert event.fields["table"] == [{"Model": "kokoro", "Status": "READY"}]


# A command line tritonserver refuses: its usage text (about 400 lines, trimmed here), then the reason.
USAGE = """\
Usage: tritonserver [options]
  --help
\tPrint usage

Server:
  --id <string>
\tIdentifier for this server.
DEPRECATED:
  --strict-model-config <boolean>
\tDEPRECATED: If true model configuration files must be provided and all

"""


def test_a_refused_command_line_is_one_usage_event_and_the_reason_as_an_error() -> None:
    reason = "The server cannot listen to HTTP requests and GRPC requests at the same address and port 0.0.0.0:8300"
    events = parse(USAGE + reason + "\n")
    assert [(logging.getLevelName(e.level), e.msg) for e in events] == [
        ("DEBUG", "tritonserver printed its usage text"),
        ("ERROR", reason),
    ]
    assert events[0].fields == {"lines": len(USAGE.splitlines())}


def test_an_unrecognized_option_is_an_error_and_the_usage_after_it_one_event() -> None:
    complaint = "/opt/tritonserver/bin/tritonserver: unrecognized option '--bogus=1'"
    events = parse(complaint + "\n" + USAGE)
    assert [(logging.getLevelName(e.level), e.msg) for e in events] == [
        ("ERROR", complaint),
        ("DEBUG", "tritonserver printed its usage text"),
    ]
