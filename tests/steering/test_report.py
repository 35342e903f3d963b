from navintent.steering.report import summary_lines


def test_summary_lines_say_which_draws_each_number_comes_from():
    """The objective printed first is the fresh-draw value; the on-draw and fresh min-distances are labelled."""
    row = {
        "objective_eval_draws_mean": 2748.4567,
        "min_distance_opt_draws_mean": 0.268,
        "attack_success_rate_opt_draws_mean": 0.5,
        "min_distance_eval_draws_mean": 0.61,
        "attack_success_rate_mean": 0.25,
        "in_data_range_rate": 1.0,
        "seconds": 3.21,
    }
    assert summary_lines({"adam": row, "plain": {"objective_eval_draws_mean": 1.5, "seconds": 0.04}}) == [
        "      adam: objective on fresh draws 2748.4567  min-dist 0.268 m / success 0.50 on the optimisation draws, "
        "0.610 m / 0.25 on fresh ones  realism in data range 100%  (3.2 s)",
        "     plain: objective on fresh draws 1.5000  (0.0 s)",
    ]
