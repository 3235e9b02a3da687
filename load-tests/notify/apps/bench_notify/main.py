import time


def execute(data: dict, conn=None) -> dict:
    return {
        "ok": True,
        "_actions": [
            {"name": "tick", "payload": {"round": data.get("round"), "t": time.time()}}
        ],
    }
