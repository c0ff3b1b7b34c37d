#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/metrics.h"

static char *render(const gw_metrics_t *m)
{
    gw_buf_t b;
    gw_buf_init(&b);
    gw_metrics_render(m, &b);
    char *s = gw_xstrndup(b.base ? b.base : "", b.len);
    gw_buf_dispose(&b);
    return s;
}

static void collect_gauge(gw_buf_t *out, void *ud)
{
    gw_buf_appendf(out, "# TYPE g gauge\ng %d\n", *(int *)ud);
}

Test(metrics, counters_in_registration_order_with_touched_zeros, .timeout = 10)
{
    gw_metrics_t *m = gw_metrics_new();
    int g = 7;
    gw_metrics_collector(m, collect_gauge, &g);
    gw_metric_t *req = gw_metrics_counter(m, "req_total", "Requests.", "endpoint");
    gw_metric_t *all = gw_metrics_counter(m, "all_total", NULL, NULL);
    gw_metric_touch(req, "b");
    gw_metric_add(req, "a", 2);
    gw_metric_add(req, "a", 3);
    gw_metric_add(all, "ignored: no label", 1);
    char *s = render(m);
    cr_assert_str_eq(s, "# TYPE g gauge\ng 7\n"
                        "# HELP req_total Requests.\n# TYPE req_total counter\n"
                        "req_total{endpoint=\"b\"} 0\nreq_total{endpoint=\"a\"} 5\n"
                        "# TYPE all_total counter\nall_total 1\n");
    free(s);
    gw_metrics_free(m);
}

Test(metrics, histogram_buckets_are_cumulative_with_sum_and_count, .timeout = 10)
{
    gw_metrics_t *m = gw_metrics_new();
    static const double bounds[] = {0.1, 1, 10};
    gw_metric_t *h = gw_metrics_histogram(m, "dur_seconds", NULL, "endpoint", bounds, 3);
    gw_metric_observe(h, "e", 0.05);
    gw_metric_observe(h, "e", 0.1); /* on a bound: counted in that bucket (le = less or equal) */
    gw_metric_observe(h, "e", 5);
    gw_metric_observe(h, "e", 50);
    char *s = render(m);
    cr_assert_str_eq(s, "# TYPE dur_seconds histogram\n"
                        "dur_seconds_bucket{endpoint=\"e\",le=\"0.1\"} 2\n"
                        "dur_seconds_bucket{endpoint=\"e\",le=\"1\"} 2\n"
                        "dur_seconds_bucket{endpoint=\"e\",le=\"10\"} 3\n"
                        "dur_seconds_bucket{endpoint=\"e\",le=\"+Inf\"} 4\n"
                        "dur_seconds_sum{endpoint=\"e\"} 55.150000\n"
                        "dur_seconds_count{endpoint=\"e\"} 4\n");
    free(s);
    gw_metrics_free(m);
}

Test(metrics, label_values_are_escaped, .timeout = 10)
{
    gw_metrics_t *m = gw_metrics_new();
    gw_metric_t *c = gw_metrics_counter(m, "x_total", NULL, "replica");
    gw_metric_add(c, "a\"b\\c\nd", 1);
    char *s = render(m);
    cr_assert_str_eq(s, "# TYPE x_total counter\nx_total{replica=\"a\\\"b\\\\c\\nd\"} 1\n");
    free(s);
    gw_metrics_free(m);
}
