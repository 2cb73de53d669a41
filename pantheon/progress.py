"""Progress of a command's long loops: a bar redrawn in place on a terminal, a line every
``every`` items otherwise (logs and CI keep a readable record either way)."""

from django.core.management.base import OutputWrapper


class Progress:
    def __init__(self, out: OutputWrapper, *, label: str, every: int = 100, width: int = 30) -> None:
        self.out, self.label, self.every, self.width = out, label, every, width
        self.tty = out.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not total:
            return
        if self.tty:
            filled = self.width * done // total
            bar = "#" * filled + "-" * (self.width - filled)
            self.out.write(f"\r  {self.label} [{bar}] {done}/{total}", ending="\n" if done == total else "")
        elif done == total or (done and done % self.every == 0):
            self.out.write(f"  {self.label}: {done}/{total}")
        self.out.flush()
