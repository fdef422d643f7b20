"""``python -m llm_proxy`` is the same as the ``llm-audit`` command."""

from llm_proxy.cli.app import main

if __name__ == "__main__":
    main()
