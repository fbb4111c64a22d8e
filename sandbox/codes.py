"""Akool's business codes and the messages the sandbox answers with (Akool's "Response Code"
docs)."""

from __future__ import annotations

OK = 1000
PARAM_ERROR = 1003
TOO_FREQUENT = 1005
CONTENT_NOT_EXIST = 1008
INVALID_TOKEN = 1101
EMPTY_TOKEN = 1102

MESSAGES: dict[int, str] = {
    1000: "OK",
    1003: "Parameter error",
    1004: "Requires verification",
    1005: "Operation is too frequent",
    1006: "Your quota is not enough",
    1008: "content not exist",
    1009: "permission denied",
    1010: "This content cannot be operated",
    1011: "This content has been operated",
    1014: "resource does not exist",
    1015: "Create video error, please try again later",
    1017: "Audio not created",
    1101: "Invalid authorization or the request token has expired",
    1102: "Authorization cannot be empty",
    1103: "Not paid or payment is overdue",
    1104: "Insufficient credit balance",
    1109: "Account not exist",
    1110: "Audio processing error",
    1112: "Voice processing error",
    1200: "The account has been banned",
    1201: "Create audio error, please try again later",
    1213: "Requires subscription user to use",
    1221: "Account not subscribed",
}


def message(code: int) -> str:
    return MESSAGES.get(code, "error")
