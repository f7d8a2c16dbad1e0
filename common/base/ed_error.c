/* ed_error: the error-code table, its descriptions, and the error record helpers. */
#include "ed_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *ed_strerror(int code)
{
    switch (code) {
    case ED_OK:
        return "success";
#define ED_ERR_DESC(name, value, desc)                                                             \
    case ED_##name:                                                                                \
        return desc;
        ED_ERRNO_MAP(ED_ERR_DESC)
#undef ED_ERR_DESC
    default:
        return "unknown error";
    }
}

const char *ed_err_name(int code)
{
    switch (code) {
    case ED_OK:
        return "OK";
#define ED_ERR_NAME(name, value, desc)                                                             \
    case ED_##name:                                                                                \
        return #name;
        ED_ERRNO_MAP(ED_ERR_NAME)
#undef ED_ERR_NAME
    default:
        return "EUNKNOWN";
    }
}

int ed_err_set(ed_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int ed_err_wrap(ed_err *err, const char *fmt, ...)
{
    if (!err)
        return ED_EINVAL;
    char prefix[ED_ERRSTR_LEN];
    char old[ED_ERRSTR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char joined[2 * ED_ERRSTR_LEN + 4];
    memcpy(old, err->msg, sizeof old);
    snprintf(joined, sizeof joined, "%s: %s", prefix, old);
    snprintf(err->msg, sizeof err->msg, "%.*s", (int)(sizeof err->msg - 1), joined);
    return err->code;
}

void ed_err_clear(ed_err *err)
{
    if (err) {
        err->code = ED_OK;
        err->msg[0] = '\0';
    }
}
