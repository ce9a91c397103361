"""The drive script's RunParams of the spec's hash check values (param_YOs74u with 2 ms bins)."""

LORENZ = dict(
    c_learning_rate_stop=0.001,
    c_batch_size=150,
    c_co_dim=0,
    c_ic_enc_dim=64,
    c_gen_dim=64,
    c_factors_dim=8,
)
