"""The end-to-end jobs behind the ``bitsim`` command, one module each: its options, its run, its report,
plot and printing. Each command is a :class:`~bitsim.jobs.arguments.Command` (``help``,
``add_arguments(parser)``, ``run(args)``) that :mod:`bitsim.cli` routes to.

=============  ==========================================================================
module         commands
=============  ==========================================================================
``bnn``        ``bitsim train bnn``, ``bitsim demo``, ``bitsim eval``, ``bitsim summary``
``connect``    ``bitsim train connect``
``gru``        ``bitsim train gru``, ``bitsim gru table``
``surgery``    ``bitsim train surgery``
``golden``     ``bitsim export``, ``bitsim compare``
``explain``    ``bitsim explain``, ``bitsim tour``
=============  ==========================================================================

``arguments`` holds what they share on the command line: the Command record, argument types, common
options and the configuration they give; ``runs`` what the training jobs do alike around a run: its
directory, its report file, its plots. A module's ``add_arguments`` and ``run`` functions are private:
its commands are its interface.
"""
