"""`python -m trainer.feedback`: one joiner pass; prints its summary as one JSON line, exits 1 when it failed."""

from __future__ import annotations

import json
import logging
import sys

from core import gcs, logs, settings
from core.errors import ServiceError
from trainer.settings import TrainerSettings

log = logging.getLogger("trainer.feedback")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m trainer.feedback", description=__doc__.split(":")[1].strip())
    parser.parse_args(argv)
    config = settings.load(TrainerSettings)
    logs.setup(config.log_level)
    from trainer.feedback.join import Joiner

    client = gcs.client(config)
    try:
        result = Joiner(config, client.bucket(config.gcs_bucket)).run_once()
    except ServiceError as e:
        print(f"feedback joiner failed: {e.message}", file=sys.stderr)
        return 1
    except Exception as e:
        log.exception("feedback joiner failed")
        print(f"feedback joiner failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(json.dumps({"status": "ok", **result.summary()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
