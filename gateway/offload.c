#include "gateway/offload.h"

#include <stdlib.h>

#include "gateway/buf.h"

typedef struct {
    uv_work_t req; /** first: the libuv callbacks get &req */
    gw_offload_fn work, done;
    void *ud;
} job_t;

static void on_work(uv_work_t *w)
{
    job_t *j = (job_t *)w;
    j->work(j->ud);
}

static void on_after_work(uv_work_t *w, int status)
{
    (void)status; /* never cancelled: nobody calls uv_cancel on these */
    job_t *j = (job_t *)w;
    gw_offload_fn done = j->done;
    void *ud = j->ud;
    free(j);
    done(ud);
}

bool gw_offload(uv_loop_t *loop, size_t bytes, gw_offload_fn work, gw_offload_fn done, void *ud)
{
    if (bytes >= GW_OFFLOAD_MIN_BYTES) {
        job_t *j = gw_xcalloc(1, sizeof(*j));
        j->work = work;
        j->done = done;
        j->ud = ud;
        if (uv_queue_work(loop, &j->req, on_work, on_after_work) == 0)
            return true;
        free(j);
    }
    work(ud);
    return false;
}
