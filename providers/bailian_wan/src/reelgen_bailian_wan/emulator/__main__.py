"""`python -m reelgen_bailian_wan.emulator --port N`."""

from .cli import dashscope_command

if __name__ == "__main__":
    dashscope_command(prog_name="python -m reelgen_bailian_wan.emulator")
