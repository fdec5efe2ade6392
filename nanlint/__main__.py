"""``python -m nanlint`` and the ``nanlint`` command.

``nanlint --version`` alone is answered here, in click's words, before click is imported: click is a third of
the command line's start-up, and editors and hooks ask for the version on every launch."""
import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from . import __version__

        print(f"nanlint, version {__version__}")  # what ``click.version_option`` prints (tests/test_cli.py)
        return
    from .cli import main as command_line

    command_line()


if __name__ == "__main__":
    main()
