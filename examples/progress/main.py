"""An async job: counts through `steps` steps, reporting progress after each."""
import time

from noderouter import progress


def execute(data: dict, conn=None) -> dict:
    try:
        steps = int(data.get("steps", 10))
        delay = float(data.get("delay_s", 0.5))
    except (TypeError, ValueError):
        raise ValueError("steps and delay_s must be numbers")
    if not 1 <= steps <= 100:
        raise ValueError("steps must be between 1 and 100")
    if not 0 <= delay <= 5:
        raise ValueError("delay_s must be between 0 and 5")
    for i in range(steps):
        time.sleep(delay)
        progress((i + 1) * 100 // steps, "step %d of %d" % (i + 1, steps))
    return {"steps": steps, "done": True}
