"""`python -m dynfault`: the same program as the `dynfault` script."""

from dynfault.cli.fastpath import console

if __name__ == "__main__":
    console()
