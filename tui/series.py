"""A bounded, downsampled history of (x, y) points: what the loss plots keep.

A run of a million steps still holds at most ``cap`` points: when full, neighbouring points
are averaged in pairs and new points are averaged in buckets twice as wide, so the whole run
stays covered at an even resolution. The newest raw point is always shown, so the plot's tip
is live even while a bucket is filling.
"""

from __future__ import annotations

DEFAULT_CAP = 400  # braille plots draw 2 points per column; 200 columns is a wide terminal


class Series:
    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        if cap < 4:
            raise ValueError("cap must be at least 4")
        self.cap = cap
        self.stride = 1  # raw points per stored point
        self._xs: list[float] = []
        self._ys: list[float] = []
        self._bucket: list[tuple[float, float]] = []  # raw points not yet stored
        self.count = 0  # raw points seen

    def __len__(self) -> int:
        return len(self._xs) + (1 if self._bucket else 0)

    def add(self, x: float, y: float) -> None:
        if (self._bucket and x <= self._bucket[-1][0]) or (self._xs and x <= self._xs[-1]):
            self.truncate_after(x - 1e-9)  # the producer went back (a resumed run)
        self.count += 1
        self._bucket.append((x, y))
        if len(self._bucket) >= self.stride:
            self._flush()

    def _flush(self) -> None:
        n = len(self._bucket)
        self._xs.append(self._bucket[-1][0])
        self._ys.append(sum(y for _, y in self._bucket) / n)
        self._bucket.clear()
        if len(self._xs) >= self.cap:
            self._xs = self._xs[1::2]
            self._ys = [(a + b) / 2 for a, b in zip(self._ys[0::2], self._ys[1::2], strict=False)]
            self.stride *= 2

    def truncate_after(self, x: float) -> None:
        """Forget points beyond ``x`` (a resumed run repeats the steps after its checkpoint)."""
        self._bucket = [p for p in self._bucket if p[0] <= x]
        while self._xs and self._xs[-1] > x:
            self._xs.pop()
            self._ys.pop()

    def points(self) -> tuple[list[float], list[float]]:
        xs, ys = list(self._xs), list(self._ys)
        if self._bucket:
            xs.append(self._bucket[-1][0])
            ys.append(self._bucket[-1][1])
        return xs, ys

    @property
    def last(self) -> float | None:
        if self._bucket:
            return self._bucket[-1][1]
        return self._ys[-1] if self._ys else None
