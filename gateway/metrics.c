#include "gateway/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_COUNTER, KIND_HISTOGRAM, KIND_COLLECTOR } kind_t;

/* One label value's numbers. A histogram keeps cumulative-at-render bucket counts. */
struct series {
    char *value; /** owned; NULL for an unlabelled family */
    uint64_t count;
    double sum;
    uint64_t *buckets; /** histogram only: n_bounds + 1 (the last is +Inf) */
    struct series *next;
};

struct gw_metric {
    kind_t kind;
    char *name, *help, *label; /** owned */
    double *bounds;
    size_t n_bounds;
    struct series *head, *tail; /** first-use order; families have few series (endpoints, replicas) */
    gw_metrics_collect_cb collect;
    void *ud;
    struct gw_metric *next;
};

struct gw_metrics {
    gw_metric_t *head, *tail;
};

static char *dup_or_null(const char *s)
{
    return s ? gw_xstrndup(s, strlen(s)) : NULL;
}

gw_metrics_t *gw_metrics_new(void)
{
    return gw_xcalloc(1, sizeof(gw_metrics_t));
}

void gw_metrics_free(gw_metrics_t *m)
{
    if (!m)
        return;
    while (m->head) {
        gw_metric_t *f = m->head;
        m->head = f->next;
        while (f->head) {
            struct series *s = f->head;
            f->head = s->next;
            free(s->value);
            free(s->buckets);
            free(s);
        }
        free(f->name);
        free(f->help);
        free(f->label);
        free(f->bounds);
        free(f);
    }
    free(m);
}

static gw_metric_t *add_family(gw_metrics_t *m, kind_t kind, const char *name, const char *help, const char *label)
{
    gw_metric_t *f = gw_xcalloc(1, sizeof(*f));
    f->kind = kind;
    f->name = dup_or_null(name);
    f->help = dup_or_null(help);
    f->label = dup_or_null(label);
    if (m->tail)
        m->tail->next = f;
    else
        m->head = f;
    m->tail = f;
    return f;
}

gw_metric_t *gw_metrics_counter(gw_metrics_t *m, const char *name, const char *help, const char *label)
{
    return add_family(m, KIND_COUNTER, name, help, label);
}

gw_metric_t *gw_metrics_histogram(gw_metrics_t *m, const char *name, const char *help, const char *label,
                                  const double *bounds, size_t n_bounds)
{
    gw_metric_t *f = add_family(m, KIND_HISTOGRAM, name, help, label);
    f->bounds = gw_xmalloc(sizeof(double) * (n_bounds ? n_bounds : 1));
    memcpy(f->bounds, bounds, sizeof(double) * n_bounds);
    f->n_bounds = n_bounds;
    return f;
}

void gw_metrics_collector(gw_metrics_t *m, gw_metrics_collect_cb cb, void *ud)
{
    gw_metric_t *f = add_family(m, KIND_COLLECTOR, NULL, NULL, NULL);
    f->collect = cb;
    f->ud = ud;
}

static bool same_value(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static struct series *series_for(gw_metric_t *f, const char *value)
{
    if (!f->label)
        value = NULL;
    for (struct series *s = f->head; s; s = s->next)
        if (same_value(s->value, value))
            return s;
    struct series *s = gw_xcalloc(1, sizeof(*s));
    s->value = dup_or_null(value);
    if (f->kind == KIND_HISTOGRAM)
        s->buckets = gw_xcalloc(f->n_bounds + 1, sizeof(uint64_t));
    if (f->tail)
        f->tail->next = s;
    else
        f->head = s;
    f->tail = s;
    return s;
}

void gw_metric_touch(gw_metric_t *f, const char *value)
{
    (void)series_for(f, value);
}

void gw_metric_add(gw_metric_t *f, const char *value, uint64_t n)
{
    series_for(f, value)->count += n;
}

void gw_metric_observe(gw_metric_t *f, const char *value, double x)
{
    struct series *s = series_for(f, value);
    size_t i = 0;
    while (i < f->n_bounds && x > f->bounds[i])
        i++;
    s->buckets[i]++;
    s->count++;
    s->sum += x;
}

void gw_metrics_label_value(gw_buf_t *out, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\')
            gw_buf_append(out, "\\", 1);
        if (*p == '\n')
            gw_buf_append(out, "\\n", 2);
        else
            gw_buf_append(out, p, 1);
    }
}

/* name{label="value"[,le="x"]} */
static void series_name(gw_buf_t *out, const gw_metric_t *f, const char *suffix, const struct series *s,
                        const char *le)
{
    gw_buf_append_cstr(out, f->name);
    gw_buf_append_cstr(out, suffix);
    if (!s->value && !le)
        return;
    gw_buf_append_cstr(out, "{");
    if (s->value) {
        gw_buf_appendf(out, "%s=\"", f->label);
        gw_metrics_label_value(out, s->value);
        gw_buf_append_cstr(out, "\"");
    }
    if (le)
        gw_buf_appendf(out, "%sle=\"%s\"", s->value ? "," : "", le);
    gw_buf_append_cstr(out, "}");
}

static void render_histogram(gw_buf_t *out, const gw_metric_t *f, const struct series *s)
{
    uint64_t cum = 0;
    char le[32];
    for (size_t i = 0; i <= f->n_bounds; i++) {
        cum += s->buckets[i];
        if (i < f->n_bounds)
            snprintf(le, sizeof(le), "%g", f->bounds[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        series_name(out, f, "_bucket", s, le);
        gw_buf_appendf(out, " %llu\n", (unsigned long long)cum);
    }
    series_name(out, f, "_sum", s, NULL);
    gw_buf_appendf(out, " %.6f\n", s->sum);
    series_name(out, f, "_count", s, NULL);
    gw_buf_appendf(out, " %llu\n", (unsigned long long)s->count);
}

void gw_metrics_render(const gw_metrics_t *m, gw_buf_t *out)
{
    for (const gw_metric_t *f = m->head; f; f = f->next) {
        if (f->kind == KIND_COLLECTOR) {
            f->collect(out, f->ud);
            continue;
        }
        if (f->help)
            gw_buf_appendf(out, "# HELP %s %s\n", f->name, f->help);
        gw_buf_appendf(out, "# TYPE %s %s\n", f->name, f->kind == KIND_COUNTER ? "counter" : "histogram");
        for (const struct series *s = f->head; s; s = s->next) {
            if (f->kind == KIND_HISTOGRAM) {
                render_histogram(out, f, s);
                continue;
            }
            series_name(out, f, "", s, NULL);
            gw_buf_appendf(out, " %llu\n", (unsigned long long)s->count);
        }
    }
}
