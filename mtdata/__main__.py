import sys

from mtdata import interrupts

interrupts.install()  # before the imports below: a signal while they load is handled too
try:
    from mtdata.cli import main
except (KeyboardInterrupt, RuntimeError) as error:
    stopped = interrupts.interrupt_behind(error)
    if stopped is None:
        raise
    sys.stderr.write(f"error: {interrupts.describe(stopped)}; nothing was written\n")
    raise SystemExit(interrupts.exit_code(stopped)) from None

main()
