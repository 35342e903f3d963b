"""Command-line layers: each module holds one command's argparse definition and turns its flags into one typed call,
then prints what the call returns (``navintent.cli.COMMANDS`` maps each command name to its module):

``check_data`` -> :func:`navintent.data.check.check_data`, ``split`` -> :func:`navintent.data.split.split_dataset`,
``train`` -> :func:`navintent.training.train`, ``make_data`` -> :func:`navintent.sim.recorder.record_dataset`,
``sample`` -> :func:`navintent.sample.sample_trajectories`, ``optimize_z2`` -> :func:`navintent.steering.optimize`,
``evaluate`` (``evaluate`` and ``experiment``) -> :func:`navintent.evaluation.evaluate` and the experiments,
``demo`` -> :func:`navintent.demo.run_demo`, ``export`` -> :func:`navintent.export.export_nomad`. ``common``: the
flags several commands share (the metric scale)."""
