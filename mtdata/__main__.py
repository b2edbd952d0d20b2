import sys

from mtdata import interrupts

interrupts.install()  # before the imports below: a signal while they load is handled too
try:
    from mtdata.cli import main
except KeyboardInterrupt as stopped:
    sys.stderr.write(f"error: {interrupts.describe(stopped)}; nothing was written\n")
    raise SystemExit(interrupts.exit_code(stopped)) from None

main()
