"""Imports every command module so that its commands register on the group."""

from . import (  # noqa: F401
    demo_cmd,
    doctor_cmd,
    dump_cmd,
    evaluate_cmd,
    export_cmd,
    kernels_cmd,
    list_cmd,
    nlb_cmd,
    plot_cmd,
    posterior_cmd,
    prepare_cmd,
    scripts_cmd,
    status_cmd,
    train_cmd,
    tune_cmd,
)
