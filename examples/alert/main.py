"""Fires an action: every subscriber of 'alert_raised' gets the message."""


def execute(data: dict, conn=None) -> dict:
    text = str(data.get("text", "")).strip()
    if not text:
        raise ValueError("text is required: what is the alert about?")
    if len(text) > 200:
        raise ValueError("text is at most 200 characters")
    return {
        "sent": True,
        "_actions": [{"name": "alert_raised", "payload": {"text": text}}],
    }
