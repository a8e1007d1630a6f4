"""Test support for `bailian_wan`, kept out of the provider and out of the emulator.

* `pytest_plugin`: the pytest plugin (entry point `reelgen_dashscope_emulator`): the
  `dashscope_emulator` fixtures and `reelgen_sandbox_bailian_wan` for the contract kit.
* `contract_sandbox`: the emulator as the contract suite's `Sandbox`, with fault injection.

The emulator itself (`reelgen_bailian_wan.emulator`) knows neither pytest nor the kit.
"""
