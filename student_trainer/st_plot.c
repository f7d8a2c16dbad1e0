/*
 * st_plot: `student_trainer plot --metrics RUN.jsonl[,OTHER.jsonl...] --out curves.png`: learning
 * curves of one or several distill runs on one chart, drawn by gnuplot (Debian gnuplot-nox).
 *
 * Each metrics file (one JSON object per epoch, as `distill --metrics` writes it; `teacher_worker
 * train --metrics` files work too, for a hard-label baseline) is read with
 * cJSON into a whitespace-separated data file in a private temp directory; a generated gnuplot
 * script (piped to `gnuplot`) draws a 2x2 PNG, one point per epoch placed at its last step (runs
 * with different epoch sizes compare at equal work): accuracy (test, and labeled train accuracy),
 * losses (total and soft, log scale), teacher latency p50/p99, and degraded batches. Runs are told
 * apart by colour, titled by --labels or the file names. A line that is not JSON is an error naming
 * the file and line.
 */
#include "st_commands.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ed_cli.h"
#include "ed_error.h"

#define S_MAX_RUNS 16

/* field `name` (or obj.sub) as a number, NaN when absent. */
static double s_num(const cJSON *o, const char *name, const char *sub)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (sub)
        v = cJSON_GetObjectItemCaseSensitive(v, sub);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Writes one column value; sets bit `col` of *has when it is a number. */
static void s_put(FILE *f, double v, int col, unsigned *has)
{
    if (isfinite(v))
        *has |= 1u << col;
    if (isfinite(v))
        fprintf(f, " %.9g", v);
    else
        fprintf(f, " NaN");
}

/* Converts one metrics file into columns: epoch test_acc train_acc loss soft hard p50 p99
 * degraded step. Returns the number of epochs, or a negative code with err naming file and line. */
static int s_convert(const char *in_path, const char *out_path, unsigned *has, ed_err *err)
{
    FILE *in = fopen(in_path, "r");
    if (!in)
        return ed_err_set(err, ED_EIO, "%s: cannot open: %s", in_path, strerror(errno));
    FILE *out = fopen(out_path, "w");
    if (!out) {
        fclose(in);
        return ed_err_set(err, ED_EIO, "%s: cannot write: %s", out_path, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    int n = 0, lineno = 0, rc = 0;
    while (getline(&line, &cap, in) > 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        cJSON *o = cJSON_Parse(line);
        if (!cJSON_IsObject(o) || !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "epoch"))) {
            cJSON_Delete(o);
            rc = ed_err_set(err, ED_EFORMAT,
                            "%s:%d: not a metrics record (a JSON object with "
                            "\"epoch\", as distill --metrics writes)",
                            in_path, lineno);
            break;
        }
        fprintf(out, "%d", (int)s_num(o, "epoch", NULL));
        s_put(out, s_num(o, "test_accuracy", NULL), 2, has);
        /* distill's names, else teacher_worker train's (a hard-label baseline on the same chart) */
        double acc = s_num(o, "train_accuracy_labeled", NULL), loss = s_num(o, "loss", NULL);
        s_put(out, isnan(acc) ? s_num(o, "train_accuracy", NULL) : acc, 3, has);
        s_put(out, isnan(loss) ? s_num(o, "train_loss", NULL) : loss, 4, has);
        s_put(out, s_num(o, "soft_loss", NULL), 5, has);
        s_put(out, s_num(o, "hard_loss", NULL), 6, has);
        s_put(out, s_num(o, "teacher_latency_ms", "p50"), 7, has);
        s_put(out, s_num(o, "teacher_latency_ms", "p99"), 8, has);
        s_put(out, s_num(o, "degraded_batches", NULL), 9, has);
        s_put(out, s_num(o, "step", NULL), 10, has);
        fprintf(out, "\n");
        cJSON_Delete(o);
        n++;
    }
    free(line);
    fclose(in);
    if (fclose(out) != 0 && !rc)
        rc = ed_err_set(err, ED_EIO, "%s: write failed", out_path);
    if (!rc && n == 0)
        rc = ed_err_set(err, ED_EFORMAT, "%s: no metrics records", in_path);
    return rc ? rc : n;
}

/* Writes s as a gnuplot single-quoted string ('' stands for '). */
static void s_quoted(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

static bool s_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20)
            return false;
    return true;
}

/* One series of a panel, unless run i has no number in that column. */
static void s_series(FILE *g, const char *data, const char *label, const char *suffix, int col,
                     int colour, int dash, unsigned has, int *n_plotted)
{
    if (!(has & (1u << col)))
        return;
    char t[600];
    snprintf(t, sizeof t, "%s%s", label, suffix);
    fprintf(g, "%s", (*n_plotted)++ ? ", " : "");
    s_quoted(g, data);
    fprintf(g, " using 10:%d with linespoints lc %d dt %d title ", col, colour, dash);
    s_quoted(g, t);
}

/* One panel: for each run, column col against the step (col2 > 0: a second, dashed series). */
static void s_panel(FILE *g, const char *title, const char *ylabel, int n, char data[][4096],
                    char *const *labels, const unsigned *has, int col, const char *suffix, int col2,
                    const char *suffix2)
{
    fprintf(g, "set title '%s'\nset ylabel '%s'\n", title, ylabel);
    bool any = false;
    for (int i = 0; i < n; i++)
        any |= (has[i] >> col & 1u) || (col2 > 0 && (has[i] >> col2 & 1u));
    if (!any) { /* a constant outside the fixed y range: an empty panel that says so */
        fprintf(g, "set label 1 'no data' at graph 0.45,0.5\nplot [0:1][0:1] 2 notitle\n"
                   "unset label 1\n");
        return;
    }
    fprintf(g, "plot ");
    int plotted = 0;
    for (int i = 0; i < n; i++) {
        s_series(g, data[i], labels[i], suffix, col, i + 1, 1, has[i], &plotted);
        if (col2 > 0)
            s_series(g, data[i], labels[i], suffix2, col2, i + 1, 2, has[i], &plotted);
    }
    fprintf(g, "\n");
}

/* Splits a comma list in place into at most max items. */
static int s_split(char *list, char **items, int max)
{
    int n = 0;
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == max)
            return -1;
        items[n++] = t;
    }
    return n;
}

static int s_plot(char **files, char **labels, int n, const char *out, const char *title,
                  ed_err *err)
{
    char dir[] = "/tmp/edistill-plot.XXXXXX";
    const char *tmp = getenv("TMPDIR");
    char dirbuf[4096];
    snprintf(dirbuf, sizeof dirbuf, "%s/edistill-plot.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    char *d = mkdtemp(strlen(dirbuf) < sizeof dirbuf - 1 ? dirbuf : dir);
    if (!d)
        return ed_err_set(err, ED_EIO, "cannot create a temp directory: %s", strerror(errno));
    static char data[S_MAX_RUNS][4096];
    unsigned has[S_MAX_RUNS] = {0}; /* columns with at least one number, per run */
    int rc = 0, made = 0;
    for (int i = 0; i < n && !rc; i++) {
        snprintf(data[i], sizeof data[i], "%s/run%d.dat", d, i);
        int e = s_convert(files[i], data[i], &has[i], err);
        if (e < 0)
            rc = e;
        made++;
    }
    if (!rc) {
        FILE *g = popen("gnuplot", "w");
        if (!g) {
            rc = ed_err_set(err, ED_EIO, "cannot run gnuplot: %s", strerror(errno));
        } else {
            fprintf(g, "set terminal pngcairo size 1200,850 noenhanced font ',10'\nset output ");
            s_quoted(g, out);
            fprintf(g,
                    "\nset datafile missing 'NaN'\nset grid\nset key bottom right\n"
                    "set xlabel 'step (points: ends of epochs)'\nset multiplot layout 2,2 title ");
            s_quoted(g, title);
            fprintf(g, "\n");
            s_panel(g, "accuracy", "accuracy", n, data, labels, has, 2, " test", 3,
                    " train (labeled)");
            fprintf(g, "set logscale y\n"); /* T^2-scaled soft terms vs hard losses */
            s_panel(g, "loss", "loss (log scale)", n, data, labels, has, 4, " total", 5, " soft");
            fprintf(g, "unset logscale y\n");
            s_panel(g, "teacher latency", "ms", n, data, labels, has, 7, " p50", 8, " p99");
            fprintf(g, "set yrange [0:1<*]\n"); /* all zero in a healthy run */
            s_panel(g, "degraded batches", "batches", n, data, labels, has, 9, "", 0, NULL);
            fprintf(g, "unset multiplot\nset output\n");
            int st = pclose(g);
            if (st != 0)
                rc = ed_err_set(err, ED_EIO, "gnuplot failed (status %d)%s", st,
                                WIFEXITED(st) && WEXITSTATUS(st) == 127
                                    ? ": not installed? apt-get install gnuplot-nox"
                                    : "");
        }
    }
    for (int i = 0; i < made; i++)
        remove(data[i]);
    rmdir(d);
    return rc;
}

int st_plot_main(int argc, char **argv)
{
    const char *metrics = NULL, *labels = NULL, *out = NULL, *title = "edistill learning curves";
    const ed_cli_opt opts[] = {
        {"metrics", ED_CLI_STR, &metrics, "FILE[,FILE...]",
         "metrics files of distill runs (--metrics FILE of distill); several = one chart", NULL,
         true},
        {"labels", ED_CLI_STR, &labels, "NAME[,NAME...]",
         "legend names of the runs (default: the file names)", NULL, false},
        {"out", ED_CLI_STR, &out, "FILE", "PNG file to write", NULL, true},
        {"title", ED_CLI_STR, &title, "TEXT", "chart title", NULL, false},
    };
    const ed_cli_spec spec = {
        "student_trainer plot --metrics RUN.jsonl[,OTHER.jsonl] --out curves.png",
        "Draws learning curves with gnuplot: accuracy, losses, teacher latency and degraded\n"
        "batches per epoch, several runs on one chart.",
        opts, (int)(sizeof opts / sizeof opts[0]),
        "example:\n  student_trainer plot --metrics t4.jsonl,t1.jsonl --labels T=4,T=1 --out "
        "curves.png"};
    int rc;
    if (!ed_cli_parse_command(&spec, "student_trainer plot", argc, argv, &rc))
        return rc;
    char *mlist = strdup(metrics), *llist = labels ? strdup(labels) : NULL;
    char *files[S_MAX_RUNS], *names[S_MAX_RUNS];
    int n = mlist ? s_split(mlist, files, S_MAX_RUNS) : -1;
    int nl = llist ? s_split(llist, names, S_MAX_RUNS) : 0;
    ed_err err = {0};
    if (n <= 0 || (llist && nl != n) || !s_printable(out) || !s_printable(title)) {
        ed_cli_reportf("student_trainer plot", "%s",
                       n == 0  ? "--metrics: no file given"
                       : n < 0 ? "--metrics: at most 16 files"
                       : !s_printable(out) || !s_printable(title)
                           ? "--out/--title: control characters"
                           : "--labels: give one name per file");
        free(mlist);
        free(llist);
        return 2;
    }
    for (int i = 0; i < n && !llist; i++) {
        const char *slash = strrchr(files[i], '/');
        names[i] = (char *)(slash ? slash + 1 : files[i]);
    }
    rc = s_plot(files, names, n, out, title, &err);
    if (rc)
        ed_cli_report("student_trainer plot", &err);
    else
        printf("%s: %d run%s plotted\n", out, n, n == 1 ? "" : "s");
    free(mlist);
    free(llist);
    return rc ? 1 : 0;
}
