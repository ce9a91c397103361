#!/bin/bash

path_to_run_lfads="$(which run_lfads.py)"
if [ ! -n "$path_to_run_lfads" ]; then
    echo "Error: run_lfads.py not found on PATH. Ensure you add LFADS to your system PATH."
    exit 1
fi

set -o pipefail
python "$(which run_lfads.py)" --data_dir=<ROOT>/runs/exampleRun/param_8h2iDM/all/lfadsInput --data_filename_stem=lfads --lfads_save_dir=<ROOT>/runs/exampleRun/param_8h2iDM/all/lfadsOutput --kind=posterior_sample_and_average --batch_size=512 --checkpoint_pb_load_name=checkpoint_lve  --allow_gpu_growth=true --max_ckpt_to_keep=5 --max_ckpt_to_keep_lve=5 --device=/gpu:0 --learning_rate_init=0.01 --learning_rate_decay_factor=0.98 --learning_rate_n_to_compare=6 --learning_rate_stop=0.001 --max_grad_norm=200 --cell_clip_value=5 --keep_prob=0.95 --l2_gen_scale=500 --l2_con_scale=500 --co_mean_corr_scale=0 --kl_ic_weight=1 --kl_co_weight=1 --kl_start_step=0 --kl_increase_steps=1800 --l2_start_step=0 --l2_increase_steps=1800 --ext_input_dim=0 --inject_ext_input_to_gen=false --co_dim=0 --prior_ar_atau=10 --do_train_prior_ar_atau=true --prior_ar_nvar=0.1 --do_train_prior_ar_nvar=true --do_causal_controller=false --do_feed_factors_to_controller=true --feedback_factors_or_rates=factors --controller_input_lag=1 --ci_enc_dim=128 --con_dim=128 --co_prior_var_scale=0.1 --num_steps_for_gen_ic=4294967295 --ic_dim=64 --ic_enc_dim=64 --ic_prior_var_min=0.1 --ic_prior_var_scale=0.1 --ic_prior_var_max=0.1 --ic_post_var_min=1e-07 --cell_weight_scale=1 --gen_dim=64 --gen_cell_input_weight_scale=1 --gen_cell_rec_weight_scale=1 --factors_dim=8 --output_dist=poisson --do_train_readin=true 2>&1 | tee -a <ROOT>/runs/exampleRun/param_8h2iDM/all/lfads.out
