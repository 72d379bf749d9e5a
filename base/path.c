#include "path.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

void kms_path_join(char *buf, size_t len, const char *dir, const char *name)
{
    if (!dir[0] || strcmp(dir, ".") == 0 || name[0] == '/')
        snprintf(buf, len, "%s", name);
    else if (dir[strlen(dir) - 1] == '/')
        snprintf(buf, len, "%s%s", dir, name);
    else
        snprintf(buf, len, "%s/%s", dir, name);
}

bool kms_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcasecmp(s + n - m, suffix) == 0;
}
