#include "path.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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

char *kms_path_absolute(const char *path)
{
    if (path[0] == '@') {
        char *rest = kms_path_absolute(path + 1);
        char *s = rest ? malloc(strlen(rest) + 2) : NULL;
        if (s)
            sprintf(s, "@%s", rest);
        free(rest);
        return s;
    }
    char cwd[PATH_MAX];
    if (path[0] == '/' || !path[0] || !getcwd(cwd, sizeof cwd))
        return strdup(path);
    size_t n = strlen(cwd) + strlen(path) + 2;
    char *s = malloc(n);
    if (s)
        kms_path_join(s, n, cwd, path);
    return s;
}
