"""Quotes: a small FastAPI app. Its health answer goes through pydantic's
compiled core, so an image with the other platform's wheel cannot pass."""

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI(title="quotes")


class Health(BaseModel):
    status: str
    service: str


class Quote(BaseModel):
    symbol: str
    price: float


@app.get("/health")
def health() -> Health:
    return Health(status="ok", service="quotes")


@app.get("/quotes/{symbol}")
def quote(symbol: str) -> Quote:
    return Quote(symbol=symbol.upper(), price=100.0)
