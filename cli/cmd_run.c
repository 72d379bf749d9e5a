/* kmseg run: the config's stages over every input. */
#include "commands.h"

int kms_cmd_run(const kms_pipeline *pl, const kms_batch_options *opt)
{
    kms_error err;
    kms_error_clear(&err);
    kms_batch_result res;
    if (kms_batch_run(pl, opt, &res, &err) != KMS_OK) {
        kms_batch_report(&err);
        return 2;
    }
    if (res.interrupted)
        return kms_batch_stop_status();
    return res.failed ? 1 : 0;
}
