/* The HTML report of run, compare and elbow: one page, written atomically
 * like every output. Rows are static HTML (readable without JS, countable
 * by tools); the inline script sorts them by a header click and shows 200
 * a page, so 5,000 inputs stay quick: hidden rows load no thumbnail. */
#include "report.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "opencv_c.h"
#include "path.h"
#include "provenance.h"

#define MAX_COLS 40

/* --- CSV ------------------------------------------------------------------- */

typedef struct csv {
    char **cells;   /* row-major, n_cols a row; row 0 the header */
    size_t n_cols, n_rows, cap;
} csv;

static void csv_free(csv *c)
{
    for (size_t i = 0; i < c->n_rows * c->n_cols; i++)
        free(c->cells[i]);
    free(c->cells);
    memset(c, 0, sizeof *c);
}

/* Room for one more record. */
static bool csv_grow(csv *c)
{
    size_t need = (c->n_rows + 1) * c->n_cols;
    if (need <= c->cap)
        return true;
    size_t cap = c->cap ? 2 * c->cap : 256;
    while (cap < need)
        cap *= 2;
    char **p = realloc(c->cells, cap * sizeof *p);
    if (!p)
        return false;
    c->cells = p;
    c->cap = cap;
    return true;
}

/* Parses text: "" escapes, quoted line breaks, CRLF. Records with another
 * number of fields than the header are padded or cut. */
static kms_status csv_parse(csv *c, const char *text, size_t len,
                            kms_error *err)
{
    memset(c, 0, sizeof *c);
    char **row = NULL;
    size_t n = 0, cap = 0;
    char *field = malloc(len + 1);
    size_t flen = 0;
    bool quoted = false, ok = field != NULL;
    size_t filled = 0; /* cells of the current record in c->cells */
    for (size_t i = 0; ok && i <= len; i++) {
        char ch = i < len ? text[i] : '\n';
        if (quoted) {
            if (ch == '"' && i + 1 < len && text[i + 1] == '"') {
                field[flen++] = '"';
                i++;
            } else if (ch == '"') {
                quoted = false;
            } else {
                field[flen++] = ch;
            }
            continue;
        }
        if (ch == '"') {
            quoted = true;
            continue;
        }
        if (ch != ',' && ch != '\n') {
            if (ch != '\r')
                field[flen++] = ch;
            continue;
        }
        /* a field ends */
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            char **r = realloc(row, cap * sizeof *r);
            if (!r) {
                ok = false;
                break;
            }
            row = r;
        }
        field[flen] = '\0';
        row[n] = strdup(field);
        ok = row[n++] != NULL;
        flen = 0;
        if (ch == ',' || !ok)
            continue;
        /* a record ends; a blank line is none */
        if (!(n == 1 && !row[0][0])) {
            if (c->n_rows == 0)
                c->n_cols = n;
            ok = csv_grow(c);
            for (size_t k = 0; ok && k < c->n_cols; k++) {
                char *cell = k < n ? row[k] : strdup("");
                if (k < n)
                    row[k] = NULL;
                ok = cell != NULL;
                if (ok)
                    c->cells[c->n_rows * c->n_cols + k] = cell;
                filled = k + (ok ? 1 : 0);
            }
            if (ok) {
                c->n_rows++;
                filled = 0;
            }
        }
        for (size_t k = 0; k < n; k++)
            free(row[k]);
        n = 0;
    }
    for (size_t k = 0; k < n; k++)
        free(row[k]);
    if (!ok) /* cells of a half-pushed record */
        for (size_t k = 0; k < filled; k++)
            free(c->cells[c->n_rows * c->n_cols + k]);
    free(row);
    free(field);
    if (!ok) {
        csv_free(c);
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    }
    return KMS_OK;
}

static const char *cell(const csv *c, size_t r, int col)
{
    return col >= 0 ? c->cells[r * c->n_cols + (size_t)col] : "";
}

static int column(const csv *c, const char *name)
{
    for (size_t i = 0; c->n_rows && i < c->n_cols; i++)
        if (strcmp(c->cells[i], name) == 0)
            return (int)i;
    return -1;
}

/* --- the table ------------------------------------------------------------- */

typedef struct col {
    char name[64];
    bool num;
} col;

typedef struct row {
    char **cells;        /* one a column, owned, NULL: empty */
    char *thumb;         /* picture shown and linked, or NULL */
    char *links;         /* other products: names, '\n'-separated */
    const char *status;  /* ok, error, skipped */
    double order;        /* NAN: after the others */
    size_t index;
} row;

typedef struct table {
    col cols[MAX_COLS];
    size_t n_cols;
    row *rows;
    size_t n_rows;
    const char *thumb_title; /* header of the picture column, NULL: none */
    int thumb_width;
} table;

static void table_free(table *t)
{
    for (size_t r = 0; r < t->n_rows; r++) {
        for (size_t c = 0; c < t->n_cols; c++)
            free(t->rows[r].cells[c]);
        free(t->rows[r].cells);
        free(t->rows[r].thumb);
        free(t->rows[r].links);
    }
    free(t->rows);
}

static void add_col(table *t, const char *name, bool num)
{
    if (t->n_cols == MAX_COLS)
        return;
    snprintf(t->cols[t->n_cols].name, sizeof t->cols[0].name, "%s", name);
    t->cols[t->n_cols++].num = num;
}

static kms_status alloc_rows(table *t, size_t n, kms_error *err)
{
    t->rows = calloc(n ? n : 1, sizeof *t->rows);
    bool ok = t->rows != NULL;
    for (size_t r = 0; ok && r < n; r++) {
        t->rows[r].cells = calloc(t->n_cols ? t->n_cols : 1, sizeof(char *));
        ok = t->rows[r].cells != NULL;
        t->rows[r].index = r;
        t->rows[r].order = NAN;
        t->rows[r].status = "ok";
        if (ok)
            t->n_rows = r + 1;
    }
    if (!ok)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    return KMS_OK;
}

static void set_cell(row *r, size_t c, const char *text)
{
    free(r->cells[c]);
    r->cells[c] = text && text[0] ? strdup(text) : NULL;
}

static int by_order(const void *a, const void *b)
{
    const row *x = a, *y = b;
    bool xn = isnan(x->order), yn = isnan(y->order);
    if (xn != yn)
        return xn - yn;
    if (!xn && x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Leaves out columns empty in every row, but the first `keep`. */
static void drop_empty_columns(table *t, size_t keep)
{
    size_t w = 0;
    for (size_t c = 0; c < t->n_cols; c++) {
        bool any = c < keep;
        for (size_t r = 0; !any && r < t->n_rows; r++)
            any = t->rows[r].cells[c] != NULL;
        if (!any) {
            for (size_t r = 0; r < t->n_rows; r++)
                free(t->rows[r].cells[c]);
            continue;
        }
        t->cols[w] = t->cols[c];
        for (size_t r = 0; r < t->n_rows; r++)
            t->rows[r].cells[w] = t->rows[r].cells[c];
        w++;
    }
    t->n_cols = w;
}

/* --- HTML ------------------------------------------------------------------ */

static void html(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* A file name of the output folder as a relative URL: every byte but the
 * unreserved ones percent-encoded, so '#', '?', '%' and quotes stay part
 * of the name (and the result needs no HTML escaping). */
static void url(FILE *f, const char *name)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
            (*s >= '0' && *s <= '9') || strchr("-._~", *s))
            fputc(*s, f);
        else
            fprintf(f, "%%%c%c", hex[*s >> 4], hex[*s & 15]);
    }
}

static const char style[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.2em 2em;color:#222;"
    "background:#fafafa}"
    "h1{font-size:1.5em;margin:.2em 0 .6em}h2{font-size:1.15em;margin:1.2em 0 .4em}"
    "table.facts td,table.facts th{text-align:left;padding:1px 10px 1px 0;"
    "vertical-align:top}table.facts th{color:#666;font-weight:normal}"
    "code,pre{font:12px/1.35 ui-monospace,monospace}"
    "pre.cfg{background:#fff;border:1px solid #ddd;padding:8px;max-height:30em;"
    "overflow:auto}"
    ".lead{font-size:1.1em;margin:.6em 0}.lead b{color:#000}"
    ".bad{color:#b00020}"
    "table.rows{border-collapse:collapse;background:#fff;margin-top:.4em}"
    "table.rows th{position:sticky;top:0;background:#2f4858;color:#fff;"
    "padding:5px 8px;cursor:pointer;white-space:nowrap;user-select:none}"
    "table.rows th.nosort{cursor:default}"
    "table.rows th[aria-sort=ascending]::after{content:' \\25B2'}"
    "table.rows th[aria-sort=descending]::after{content:' \\25BC'}"
    "table.rows td{padding:3px 8px;border-bottom:1px solid #e3e3e3;"
    "vertical-align:top;max-width:32em;overflow-wrap:anywhere}"
    "table.rows td.in{min-width:14em}table.rows td.msg{min-width:20em}"
    "table.rows td.n{text-align:right;font-variant-numeric:tabular-nums;"
    "white-space:nowrap}"
    "tr.error td{background:#fdecee}tr.skipped td{color:#555}"
    "td.st{font-weight:600}tr.ok td.st{color:#1b7f3b}tr.error td.st{color:#b00020}"
    "td.pic img{display:block;background:#000;border:1px solid #ccc}"
    "td.pic a.p{font-size:12px;margin-right:6px}"
    ".pager{margin:.6em 0}.pager button{margin-right:4px}"
    "#kms-js-error{background:#b00020;color:#fff;padding:6px}"
    "svg.chart{background:#fff;border:1px solid #ddd;display:block;"
    "margin:.4em 0}svg.chart text{font:11px sans-serif;fill:#333}";

/* Sorting (numbers as numbers, empty cells last either way) and paging.
 * document.title says the rows it saw: a page whose script failed keeps
 * its static title, which tests look for. */
static const char script[] =
    "(function(){\n"
    "var box=document.getElementById('kms-js-error');\n"
    "window.onerror=function(m,s,l){box.hidden=false;"
    "box.textContent+='script error: '+m+' (line '+l+')\\n';};\n"
    "var t=document.getElementById('rows');if(!t){document.title="
    "'kmseg report: 0 rows';return;}\n"
    "var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);\n"
    "rows.forEach(function(r,i){r._i=i;});\n"
    "var per=" "200" ",page=0,heads=t.tHead.rows[0].cells;\n"
    "var info=document.getElementById('pageinfo'),pager=document.getElementById('pager');\n"
    "var btns=document.getElementById('pagebtn'),q=document.getElementById('filter'),list=rows;\n"
    "function val(r,c){var x=r.cells[c].textContent.trim();if(x==='')return null;"
    "if(heads[c].getAttribute('data-num')){var v=parseFloat(x);return isNaN(v)?x:v;}"
    "return x.toLowerCase();}\n"
    "function show(){var n=list.length,pages=Math.max(1,Math.ceil(n/per));"
    "if(page>=pages)page=pages-1;if(page<0)page=0;var a=page*per,b=Math.min(n,a+per);"
    "for(var i=0;i<rows.length;i++)rows[i].style.display='none';"
    "for(i=a;i<b;i++)list[i].style.display='';"
    "info.textContent='rows '+(n?a+1:0)+'\\u2013'+b+' of '+n+(n<rows.length?' (filtered from '+rows.length+')':'')"
    "+', page '+(page+1)+' of '+pages;btns.hidden=n<=per;}\n"
    "function filt(){var s=q.value.trim().toLowerCase();list=s?rows.filter(function(r){"
    "return r.textContent.toLowerCase().indexOf(s)>=0;}):rows;page=0;show();}\n"
    "q.addEventListener('input',filt);\n"
    "function sort(c,dir){rows.sort(function(x,y){var a=val(x,c),b=val(y,c);"
    "if(a===null||b===null){if(a===b)return x._i-y._i;return a===null?1:-1;}"
    "if(typeof a!==typeof b){a=String(a);b=String(b);}"
    "if(a<b)return -dir;if(a>b)return dir;return x._i-y._i;});"
    "var frag=document.createDocumentFragment();rows.forEach(function(r){frag.appendChild(r);});"
    "body.appendChild(frag);for(var i=0;i<heads.length;i++)heads[i].removeAttribute('aria-sort');"
    "heads[c].setAttribute('aria-sort',dir>0?'ascending':'descending');filt();}\n"
    "Array.prototype.forEach.call(heads,function(h,c){if(h.className==='nosort')return;"
    "h.title='click to sort';h.addEventListener('click',function(){"
    "sort(c,h.getAttribute('aria-sort')==='ascending'?-1:1);});});\n"
    "pager.addEventListener('click',function(e){var p=e.target.getAttribute('data-p');"
    "if(!p)return;var last=Math.ceil(list.length/per)-1;"
    "page=p==='first'?0:p==='prev'?page-1:p==='next'?page+1:last;show();});\n"
    "show();\n"
    "document.title='kmseg report: '+rows.length+' rows';\n"
    "})();\n";

typedef struct page {
    const kms_batch *b;
    const kms_pipeline *pl;
    const kms_batch_options *opt;
    const char *heading;
} page;

static void fact(FILE *f, const char *name, const char *value)
{
    fputs("<tr><th>", f);
    html(f, name);
    fputs("</th><td>", f);
    html(f, value);
    fputs("</td></tr>\n", f);
}

static kms_status write_head(FILE *f, const page *p, kms_error *err)
{
    const kms_provenance *prov = p->opt->provenance;
    char resolved_name[128], facts_name[128], date[64];
    kms_provenance_names(prov, p->opt, resolved_name, facts_name, NULL,
                         sizeof resolved_name);
    kms_provenance_date(date, sizeof date);
    char *resolved = NULL, *cmd = kms_provenance_command_line(prov);
    char *config = kms_path_absolute(prov->config_path);
    char *out = kms_path_absolute(p->b->out_dir);
    size_t len = 0;
    kms_status st = kms_resolved_config(p->pl, p->opt, p->b->out_dir, &resolved,
                                        &len, err);
    if (st == KMS_OK && (!cmd || !config || !out))
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    if (st == KMS_OK) {
        fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
              "<meta name=\"viewport\" content=\"width=device-width\">\n"
              "<title>kmseg report</title>\n<style>", f);
        fputs(style, f);
        fputs("</style></head><body>\n"
              "<pre id=\"kms-js-error\" hidden></pre>\n<h1>", f);
        html(f, p->heading);
        fputs("</h1>\n<table class=\"facts\">\n", f);
        fact(f, "date", date);
        fact(f, "command", cmd);
        fact(f, "config", config);
        fact(f, "output", out);
        char versions[256];
        snprintf(versions, sizeof versions, "kmseg %s, OpenCV %s", prov->version,
                 kms_cv_version());
        fact(f, "versions", versions);
        fputs("</table>\n<details><summary>resolved config (<a href=\"", f);
        url(f, resolved_name);
        fputs("\">", f);
        html(f, resolved_name);
        fputs("</a>, every key with the value it ran with; the run's facts in "
              "<a href=\"", f);
        url(f, facts_name);
        fputs("\">", f);
        html(f, facts_name);
        fputs("</a>)</summary>\n<pre class=\"cfg\">", f);
        html(f, resolved);
        fputs("</pre></details>\n", f);
    }
    free(resolved);
    free(cmd);
    free(config);
    free(out);
    return st;
}

/* The picture of a row and links to its other products. */
static void write_pictures(FILE *f, const table *t, const row *w)
{
    fputs("<td class=\"pic\">", f);
    if (w->thumb) {
        fputs("<a href=\"", f);
        url(f, w->thumb);
        fputs("\"><img src=\"", f);
        url(f, w->thumb);
        fprintf(f, "\" loading=\"lazy\" width=\"%d\" alt=\"\"></a>",
                t->thumb_width);
    }
    /* the other products, by what follows the stem */
    for (char *l = w->links; l && *l;) {
        char *end = strchr(l, '\n');
        size_t n = end ? (size_t)(end - l) : strlen(l);
        char name[KMS_PRODUCT_NAME_MAX];
        snprintf(name, sizeof name, "%.*s", (int)n, l);
        const char *us = strrchr(name, '_');
        fputs("<a class=\"p\" href=\"", f);
        url(f, name);
        fputs("\">", f);
        html(f, us ? us + 1 : name);
        fputs("</a>", f);
        l += n + (end != NULL);
    }
    fputs("</td>", f);
}

/* The picture column comes after status (the second column), in sight
 * however wide the table is. */
static void write_table(FILE *f, const table *t)
{
    size_t pic_after = t->n_cols > 1 ? 1 : 0;
    fputs("<div class=\"pager\" id=\"pager\"><input id=\"filter\" "
          "type=\"search\" size=\"30\" placeholder=\"filter: name, status, "
          "any text\"> <span id=\"pagebtn\" hidden>"
          "<button data-p=\"first\">&laquo; first</button>"
          "<button data-p=\"prev\">&lsaquo; previous</button>"
          "<button data-p=\"next\">next &rsaquo;</button>"
          "<button data-p=\"last\">last &raquo;</button></span> "
          "<span id=\"pageinfo\"></span></div>\n"
          "<table class=\"rows\" id=\"rows\"><thead><tr>", f);
    for (size_t c = 0; c < t->n_cols; c++) {
        fputs(t->cols[c].num ? "<th data-num=\"1\">" : "<th>", f);
        html(f, t->cols[c].name);
        fputs("</th>", f);
        if (c == pic_after && t->thumb_title) {
            fputs("<th class=\"nosort\">", f);
            html(f, t->thumb_title);
            fputs("</th>", f);
        }
    }
    fputs("</tr></thead>\n<tbody>\n", f);
    for (size_t r = 0; r < t->n_rows; r++) {
        const row *w = &t->rows[r];
        fprintf(f, "<tr class=\"r %s\">", w->status);
        for (size_t c = 0; c < t->n_cols; c++) {
            const char *v = w->cells[c];
            if (strcmp(t->cols[c].name, "status") == 0)
                fputs("<td class=\"st\">", f);
            else if (c == 0)
                fputs("<td class=\"in\">", f);
            else if (strcmp(t->cols[c].name, "error") == 0 ||
                     strcmp(t->cols[c].name, "note") == 0)
                fputs("<td class=\"msg\">", f);
            else
                fputs(t->cols[c].num ? "<td class=\"n\">" : "<td>", f);
            html(f, v);
            fputs("</td>", f);
            if (c == pic_after && t->thumb_title)
                write_pictures(f, t, w);
        }
        fputs("</tr>\n", f);
    }
    fputs("</tbody></table>\n", f);
}

/* The folder all inputs share ("/data/study/"), cut from the input column
 * so names can be read; written into *prefix (empty: none shared). */
static void strip_common_folder(table *t, char *prefix, size_t len)
{
    size_t n = 0;
    prefix[0] = '\0';
    for (size_t r = 0; r < t->n_rows; r++) {
        const char *s = t->rows[r].cells[0];
        if (!s)
            return;
        if (r == 0) {
            const char *slash = strrchr(s, '/');
            n = slash ? (size_t)(slash - s) + 1 : 0;
            continue;
        }
        size_t k = 0;
        while (k < n && s[k] == t->rows[0].cells[0][k])
            k++;
        while (k > 0 && s[k - 1] != '/')
            k--;
        n = k;
    }
    if (n == 0 || n >= len)
        return;
    memcpy(prefix, t->rows[0].cells[0], n);
    prefix[n] = '\0';
    for (size_t r = 0; r < t->n_rows; r++) {
        char *s = t->rows[r].cells[0];
        memmove(s, s + n, strlen(s + n) + 1);
    }
}

static kms_status write_page(const page *p, const char *name, const char *lead,
                             const char *extra, table *t, kms_error *err)
{
    char folder[4096];
    strip_common_folder(t, folder, sizeof folder);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    kms_status st = write_head(f, p, err);
    if (st == KMS_OK) {
        fprintf(f, "<p class=\"lead\">%s", lead); /* built of numbers */
        if (folder[0]) {
            fputs(" Inputs in <code>", f);
            html(f, folder);
            fputs("</code>.", f);
        }
        fputs("</p>\n", f);
        if (extra)
            fputs(extra, f);
        write_table(f, t);
        fputs("<script>", f);
        fputs(script, f);
        fputs("</script>\n</body></html>\n", f);
    }
    fclose(f);
    if (st == KMS_OK)
        st = kms_batch_write(p->b, name, text, len, err);
    free(text);
    return st;
}

/* --- rows and inputs --------------------------------------------------------- */

/* The input of the batch whose path is path, looked for from *at on (rows
 * come in input order, so this is linear over a whole table). */
static const kms_input *find_input(const kms_batch *b, const char *path,
                                   size_t *at)
{
    const kms_input_list *l = &b->inputs;
    for (size_t k = 0; k < l->n; k++) {
        size_t i = (*at + k) % l->n;
        if (strcmp(l->items[i].path, path) == 0) {
            *at = i;
            return &l->items[i];
        }
    }
    return NULL;
}

static bool exists(const kms_batch *b, const char *name)
{
    char path[4096 + KMS_PRODUCT_NAME_MAX + 2];
    struct stat sb;
    kms_path_join(path, sizeof path, b->out_dir, name);
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The overlay as the picture, the other products as links: those that
 * exist. */
static kms_status products_of(const page *p, const kms_input *in, row *r,
                              kms_error *err)
{
    enum { MAX_NAMES = 16 };
    char names[MAX_NAMES][KMS_PRODUCT_NAME_MAX];
    const char *as = in->n_files > 1 ? "series.nii.gz" : in->path;
    int n = kms_pipeline_products(p->pl, as, in->stem, names, MAX_NAMES);
    size_t links_len = 0;
    for (int i = 0; i < n; i++) {
        if (!exists(p->b, names[i]))
            continue;
        if (!r->thumb && kms_ends_with(names[i], "_overlay.png")) {
            if (!(r->thumb = strdup(names[i])))
                return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                     "out of memory");
            continue;
        }
        size_t m = strlen(names[i]);
        char *l = realloc(r->links, links_len + m + 2);
        if (!l)
            return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        r->links = l;
        memcpy(l + links_len, names[i], m);
        links_len += m;
        l[links_len++] = '\n';
        l[links_len] = '\0';
    }
    return KMS_OK;
}

static kms_status read_file(const char *path, char **text, size_t *len,
                            kms_error *err)
{
    FILE *f = fopen(path, "rb");
    *text = NULL;
    *len = 0;
    if (!f)
        return kms_error_set(err, KMS_ERR_IO, path, 0, NULL, "cannot read it");
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n + 65536 > cap) {
            char *g = realloc(buf, cap = 2 * cap + 65536);
            if (!g) {
                free(buf);
                fclose(f);
                return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                     "out of memory");
            }
            buf = g;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return kms_error_set(err, KMS_ERR_IO, path, 0, NULL, "cannot read it");
    }
    *text = buf;
    *len = n;
    return KMS_OK;
}

/* --- run ------------------------------------------------------------------- */

static const struct {
    const char *name;
    bool num;
} run_cols[] = {
    {"input", false}, {"status", false}, {"dice", true}, {"iou", true},
    {"dice_right", true}, {"dice_left", true}, {"lung_right_ml", true},
    {"lung_left_ml", true}, {"lung_right_cm2", true}, {"lung_left_cm2", true},
    {"note", false}, {"error", false}, {"k", true}, {"wcss", true},
    {"width", true}, {"height", true}, {"slices", true}, {"ms_kmeans", true},
    {"ms_total", true}, {"backend", false},
};

kms_status kms_report_run(const kms_batch *b, const kms_pipeline *pl,
                          const kms_batch_options *opt,
                          const char *summary_name, int kept, kms_error *err)
{
    page p = {b, pl, opt, "kmseg run"};
    char path[4096 + 160], name[128];
    kms_provenance_names(opt->provenance, opt, NULL, NULL, name, sizeof name);
    kms_path_join(path, sizeof path, b->out_dir, summary_name);
    char *text;
    size_t len;
    csv c;
    table t = {.thumb_width = 96};
    kms_status st = read_file(path, &text, &len, err);
    if (st != KMS_OK)
        return st;
    st = csv_parse(&c, text, len, err);
    free(text);
    if (st != KMS_OK)
        return st;
    /* the columns of the file, known ones in a reading order first */
    int src[MAX_COLS];
    size_t n_known = sizeof run_cols / sizeof *run_cols;
    for (size_t i = 0; i < n_known; i++) {
        src[t.n_cols] = column(&c, run_cols[i].name);
        add_col(&t, run_cols[i].name, run_cols[i].num);
    }
    for (size_t i = 0; c.n_rows && i < c.n_cols && t.n_cols < MAX_COLS; i++) {
        bool known = false;
        for (size_t k = 0; k < n_known; k++)
            known |= strcmp(run_cols[k].name, c.cells[i]) == 0;
        if (!known) {
            src[t.n_cols] = (int)i;
            add_col(&t, c.cells[i], false);
        }
    }
    size_t n = c.n_rows ? c.n_rows - 1 : 0;
    st = alloc_rows(&t, n, err);
    int status_col = column(&c, "status"), dice_col = column(&c, "dice");
    int ok = 0, failed = 0, skipped = 0, scored = 0;
    double dice_sum = 0, dice_min = 2;
    size_t at = 0;
    for (size_t r = 0; st == KMS_OK && r < n; r++) {
        row *w = &t.rows[r];
        for (size_t k = 0; k < t.n_cols; k++)
            set_cell(w, k, cell(&c, r + 1, src[k]));
        const char *s = cell(&c, r + 1, status_col);
        w->status = strcmp(s, "error") == 0     ? "error"
                    : strcmp(s, "skipped") == 0 ? "skipped"
                                                : "ok";
        if (w->status[0] == 'e')
            w->order = -1; /* failures before the worst Dice */
        ok += w->status[0] == 'o';
        failed += w->status[0] == 'e';
        skipped += w->status[0] == 's';
        const char *d = cell(&c, r + 1, dice_col);
        if (d[0]) {
            w->order = strtod(d, NULL);
            dice_sum += w->order;
            dice_min = w->order < dice_min ? w->order : dice_min;
            scored++;
        }
        t.thumb_title = "overlay";
        const kms_input *in = find_input(b, cell(&c, r + 1, 0), &at);
        if (in && w->status[0] != 'e' && !in->error)
            st = products_of(&p, in, w, err);
    }
    if (t.thumb_title) { /* no column of pictures when there are none */
        bool any = false;
        for (size_t r = 0; r < t.n_rows; r++)
            any |= t.rows[r].thumb || t.rows[r].links;
        if (!any)
            t.thumb_title = NULL;
    }
    if (st == KMS_OK) {
        drop_empty_columns(&t, 2);
        /* worst Dice first when there is truth */
        qsort(t.rows, t.n_rows, sizeof *t.rows, by_order);
        char lead[512];
        int used = snprintf(lead, sizeof lead,
                            "<b>%zu</b> inputs: <b>%d</b> ok, <b%s>%d</b> "
                            "failed",
                            n, ok, failed ? " class=\"bad\"" : "", failed);
        if (skipped && used > 0 && (size_t)used < sizeof lead)
            used += snprintf(lead + used, sizeof lead - (size_t)used,
                             ", <b>%d</b> skipped", skipped);
        if (kept && used > 0 && (size_t)used < sizeof lead)
            used += snprintf(lead + used, sizeof lead - (size_t)used,
                             "; <b>%d</b> of them kept from the previous run "
                             "(--resume)",
                             kept);
        if (used > 0 && (size_t)used + 1 < sizeof lead)
            lead[used++] = '.', lead[used] = '\0';
        if (scored && used > 0 && (size_t)used < sizeof lead)
            snprintf(lead + used, sizeof lead - (size_t)used,
                     " Dice mean <b>%.4f</b>, min <b>%.4f</b> over %d inputs "
                     "with truth (failures and the worst Dice first).",
                     dice_sum / scored, dice_min, scored);
        st = write_page(&p, name, lead, NULL, &t, err);
    }
    table_free(&t);
    csv_free(&c);
    return st;
}

/* --- compare and elbow ------------------------------------------------------- */

/* Bars, one an input, on a log scale when the values span more than 20x;
 * a dashed line at ref (NAN: none). */
static void bar_chart(FILE *f, const char *title, const double *v, size_t n,
                      double ref, bool log_scale, const char *unit)
{
    const double W = 900, H = 170, L = 50, B = 20, T = 22;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]) || (log_scale && v[i] <= 0))
            continue;
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    if (!(lo <= hi))
        return;
    bool lg = log_scale && lo > 0 && hi / lo > 20;
    double y0 = lg ? log10(lo) - 0.1 : 0, y1 = lg ? log10(hi) + 0.1 : hi * 1.05;
    if (y1 <= y0)
        y1 = y0 + 1;
    fprintf(f, "<svg class=\"chart\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" role=\"img\">",
            W, H, W, H);
    fputs("<text x=\"4\" y=\"14\">", f);
    html(f, title);
    fprintf(f, "%s</text>", lg ? " (log scale)" : "");
    double plot_w = W - L - 10, plot_h = H - T - B;
    double bw = plot_w / (double)(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]) || (lg && v[i] <= 0))
            continue;
        double y = lg ? log10(v[i]) : v[i];
        double h = (y - y0) / (y1 - y0) * plot_h;
        h = h < 1 ? 1 : h;
        fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                   "fill=\"#3a7ca5\">",
                L + bw * (double)i, T + plot_h - h, bw > 2 ? bw - 1 : bw, h);
        if (n <= 500)
            fprintf(f, "<title>#%zu: %.4g%s</title>", i + 1, v[i], unit);
        fputs("</rect>", f);
    }
    /* axis labels: bottom and top values */
    fprintf(f, "<text x=\"2\" y=\"%.0f\">%.4g%s</text>", T + plot_h,
            lg ? pow(10, y0) : y0, unit);
    fprintf(f, "<text x=\"2\" y=\"%.0f\">%.4g%s</text>", T + 10,
            lg ? pow(10, y1) : y1, unit);
    if (isfinite(ref) && (!lg || ref > 0)) {
        double y = lg ? log10(ref) : ref;
        double py = T + plot_h - (y - y0) / (y1 - y0) * plot_h;
        fprintf(f, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.2f\" y2=\"%.2f\" "
                   "stroke=\"#d1495b\" stroke-dasharray=\"5,3\"/>"
                   "<text x=\"%.0f\" y=\"%.2f\" fill=\"#d1495b\">median "
                   "%.3g%s</text>",
                L, W - 10, py, py, W - 150, py - 3, ref, unit);
    }
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">inputs in table order (1..%zu)"
               "</text></svg>\n",
            L, H - 4, n);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    if (!n)
        return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The failed inputs, appended as error rows after the first `used`. */
static size_t count_errors(const char *errors, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += errors[i] == '\0';
    return n / 2;
}

static void add_errors(table *t, size_t used, const char *errors, size_t len,
                       int error_col)
{
    const char *e = errors;
    for (size_t r = used; r < t->n_rows && e < errors + len; r++) {
        const char *msg = e + strlen(e) + 1;
        set_cell(&t->rows[r], 0, e);
        set_cell(&t->rows[r], 1, "error");
        set_cell(&t->rows[r], (size_t)error_col, msg);
        t->rows[r].status = "error";
        e = msg + strlen(msg) + 1;
    }
}

/* w's picture: {stem}{suffix} of the input at path (the batch's own stem,
 * found from *at on), when that product was written. */
static kms_status set_thumb(const page *p, row *w, const char *path,
                            const char *suffix, size_t *at, kms_error *err)
{
    const kms_input *in = find_input(p->b, path, at);
    char pic[KMS_PRODUCT_NAME_MAX];
    if (!in)
        return KMS_OK;
    snprintf(pic, sizeof pic, "%s%s", in->stem, suffix);
    if (exists(p->b, pic) && !(w->thumb = strdup(pic)))
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    return KMS_OK;
}

static kms_status report_compare(const page *p, const csv *c,
                                 const char *errors, size_t errors_len,
                                 kms_error *err)
{
    static const char *const names[] = {
        "input", "status", "k", "native_ms", "opencv_ms", "speedup",
        "native_wcss", "opencv_wcss", "agreement_%", "ari", "error"};
    static const char *const from[] = {
        "input", NULL, "k", "native_ms", "opencv_ms", NULL,
        "native_wcss", "opencv_wcss", NULL, "ari", NULL};
    table t = {.thumb_title = "labels that differ (red)", .thumb_width = 96};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        add_col(&t, names[i], i >= 2 && i <= 9);
    size_t n = c->n_rows ? c->n_rows - 1 : 0;
    size_t n_err = count_errors(errors, errors_len);
    double *speed = calloc(n ? n : 1, sizeof *speed);
    double *agree = calloc(n ? n : 1, sizeof *agree);
    double *sorted = calloc(n ? n : 1, sizeof *sorted);
    kms_status st = speed && agree && sorted
                        ? alloc_rows(&t, n + n_err, err)
                        : kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                        "out of memory");
    int native = column(c, "native_ms"), opencv = column(c, "opencv_ms");
    int agreement = column(c, "label_agreement");
    size_t at = 0;
    double agree_min = 2;
    for (size_t r = 0; st == KMS_OK && r < n; r++) {
        row *w = &t.rows[r];
        for (size_t k = 0; k < t.n_cols; k++)
            if (from[k])
                set_cell(w, k, cell(c, r + 1, column(c, from[k])));
        set_cell(w, 1, "ok");
        double nm = strtod(cell(c, r + 1, native), NULL);
        double om = strtod(cell(c, r + 1, opencv), NULL);
        double a = strtod(cell(c, r + 1, agreement), NULL);
        char buf[64];
        speed[r] = nm > 0 ? om / nm : NAN;
        agree[r] = 100 * a;
        agree_min = a < agree_min ? a : agree_min;
        sorted[r] = speed[r];
        snprintf(buf, sizeof buf, "%.1f", speed[r]);
        set_cell(w, 5, isfinite(speed[r]) ? buf : "");
        snprintf(buf, sizeof buf, "%.3f", 100 * a);
        set_cell(w, 8, buf);
        st = set_thumb(p, w, cell(c, r + 1, 0), "_diff.png", &at, err);
    }
    if (st == KMS_OK) {
        add_errors(&t, n, errors, errors_len, 10);
        drop_empty_columns(&t, 2);
        double med = median(sorted, n);
        char lead[400];
        snprintf(lead, sizeof lead,
                 "<b>%zu</b> inputs compared, <b%s>%zu</b> failed. Median "
                 "speed-up of native over OpenCV: <b>%.1f&times;</b> (one "
                 "thread each side); lowest label agreement <b>%.3f %%</b>.",
                 n, n_err ? " class=\"bad\"" : "", n_err, n ? med : 0.0,
                 n ? 100 * agree_min : 0.0);
        char *extra = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&extra, &len);
        if (!f)
            st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        else {
            if (n) {
                bar_chart(f, "speed-up of native over OpenCV (opencv_ms / "
                             "native_ms), per input",
                          speed, n, med, true, "x");
                bar_chart(f, "label agreement after matching, per input",
                          agree, n, NAN, false, " %");
            }
            fclose(f);
            char name[128];
            kms_provenance_names(p->opt->provenance, p->opt, NULL, NULL, name,
                                 sizeof name);
            st = write_page(p, name, lead, extra, &t, err);
        }
        free(extra);
    }
    free(speed);
    free(agree);
    free(sorted);
    table_free(&t);
    return st;
}

static kms_status report_elbow(const page *p, const csv *c, const char *errors,
                               size_t errors_len, kms_error *err)
{
    table t = {.thumb_title = "WCSS by K, knee marked", .thumb_width = 320};
    add_col(&t, "input", false);
    add_col(&t, "status", false);
    add_col(&t, "knee_k", true);
    add_col(&t, "wcss_at_knee", true);
    add_col(&t, "k_range", false);
    add_col(&t, "error", false);
    size_t n = c->n_rows ? c->n_rows - 1 : 0, inputs = 0;
    int kc = column(c, "k"), wc = column(c, "wcss"), kn = column(c, "knee");
    for (size_t r = 0; r < n; r++) /* one input: consecutive rows */
        inputs += r == 0 || strcmp(cell(c, r + 1, 0), cell(c, r, 0)) != 0;
    size_t n_err = count_errors(errors, errors_len);
    kms_status st = alloc_rows(&t, inputs + n_err, err);
    size_t at = 0, w = 0;
    for (size_t r = 0; st == KMS_OK && r < n; w++) {
        size_t end = r + 1;
        while (end < n && strcmp(cell(c, end + 1, 0), cell(c, r + 1, 0)) == 0)
            end++;
        size_t knee = r; /* the row elbow marked (knee = 1): its Kneedle */
        while (knee + 1 < end && strcmp(cell(c, knee + 1, kn), "1") != 0)
            knee++;
        row *x = &t.rows[w];
        char buf[128];
        set_cell(x, 0, cell(c, r + 1, 0));
        set_cell(x, 1, "ok");
        set_cell(x, 2, cell(c, knee + 1, kc));
        snprintf(buf, sizeof buf, "%.6g", strtod(cell(c, knee + 1, wc), NULL));
        set_cell(x, 3, buf);
        snprintf(buf, sizeof buf, "%s..%s", cell(c, r + 1, kc), cell(c, end, kc));
        set_cell(x, 4, buf);
        st = set_thumb(p, x, cell(c, r + 1, 0), "_elbow.png", &at, err);
        r = end;
    }
    if (st == KMS_OK) {
        add_errors(&t, inputs, errors, errors_len, 5);
        drop_empty_columns(&t, 2);
        char lead[300], name[128];
        snprintf(lead, sizeof lead,
                 "<b>%zu</b> inputs, <b%s>%zu</b> failed. The knee is found by "
                 "Kneedle on each input's WCSS curve and marked on its plot.",
                 inputs, n_err ? " class=\"bad\"" : "", n_err);
        kms_provenance_names(p->opt->provenance, p->opt, NULL, NULL, name,
                             sizeof name);
        st = write_page(p, name, lead, NULL, &t, err);
    }
    table_free(&t);
    return st;
}

kms_status kms_report_each(const kms_batch *b, const kms_pipeline *pl,
                           const kms_batch_options *opt, kms_report_kind kind,
                           const char *text, size_t len, const char *errors,
                           size_t errors_len, kms_error *err)
{
    page p = {b, pl, opt, kind == KMS_REPORT_COMPARE
                              ? "kmseg compare: native k-means against OpenCV"
                              : "kmseg elbow: WCSS by K and the knee"};
    csv c;
    kms_status st = csv_parse(&c, text, len, err);
    if (st != KMS_OK)
        return st;
    switch (kind) {
    case KMS_REPORT_COMPARE:
        st = report_compare(&p, &c, errors, errors_len, err);
        break;
    case KMS_REPORT_ELBOW:
        st = report_elbow(&p, &c, errors, errors_len, err);
        break;
    case KMS_REPORT_NONE:
        break;
    }
    csv_free(&c);
    return st;
}
