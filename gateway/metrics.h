/* gw_metrics: a small per-worker registry of Prometheus metrics (text format 0.0.4). Modules
 * register what they count once, at start-up, and bump it on the request path; /metrics renders
 * every family in registration order. A family has at most one label (endpoint, replica...);
 * series appear on first use, or up front with gw_metric_touch() so a dashboard sees zeros.
 * Series survive config reloads (counters stay monotonic, as Prometheus expects). */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/buf.h"

typedef struct gw_metrics gw_metrics_t;
typedef struct gw_metric gw_metric_t;

/** Appends whole exposition lines (with their own # TYPE) computed at scrape time. */
typedef void (*gw_metrics_collect_cb)(gw_buf_t *out, void *ud);

gw_metrics_t *gw_metrics_new(void);
void gw_metrics_free(gw_metrics_t *m);

/** A counter family. help may be NULL (no # HELP line); label NULL = a single unlabelled series. */
gw_metric_t *gw_metrics_counter(gw_metrics_t *m, const char *name, const char *help, const char *label);
/** A histogram family with ascending upper bounds (the +Inf bucket is implicit); values in the
 * unit of the bounds (seconds by Prometheus convention). */
gw_metric_t *gw_metrics_histogram(gw_metrics_t *m, const char *name, const char *help, const char *label,
                                  const double *bounds, size_t n_bounds);
/** Lines computed at scrape time (gauges of live state), rendered in registration order. */
void gw_metrics_collector(gw_metrics_t *m, gw_metrics_collect_cb cb, void *ud);

/** Make sure the series exists (rendered as 0 until used). value NULL for an unlabelled family. */
void gw_metric_touch(gw_metric_t *f, const char *value);
void gw_metric_add(gw_metric_t *f, const char *value, uint64_t n);
void gw_metric_observe(gw_metric_t *f, const char *value, double x);

void gw_metrics_render(const gw_metrics_t *m, gw_buf_t *out);
/** A label value with Prometheus escapes for '"', '\\' and newline. */
void gw_metrics_label_value(gw_buf_t *out, const char *v);

#endif
