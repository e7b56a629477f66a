"""`python -m srpipe` (what `torchrun -m srpipe train …` runs)."""

from srpipe.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
