from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.migrations.constraints import UniqueConstraint

class Migration(migrations.Migration):
    dependencies = [('models', '0023_note_client_request_keys')]

    initial = False

    # Each request_key was unique across its whole table, though looked up only within a
    # client's (a practice's, a note's) rows by once_per_key: a key another practice had
    # used answered 409 and told that it had been used. Unique within that scope now;
    # every row already holds, the keys having been unique in the whole table.

    operations = [
        ops.AlterField(
            model_name='Client',
            name='request_key',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddConstraint(
            model_name='Client',
            constraint=UniqueConstraint(fields=('practice', 'request_key'), name=None),
        ),
        ops.AlterField(
            model_name='Consultation',
            name='request_key',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddConstraint(
            model_name='Consultation',
            constraint=UniqueConstraint(fields=('client', 'request_key'), name=None),
        ),
        ops.AlterField(
            model_name='Document',
            name='request_key',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddConstraint(
            model_name='Document',
            constraint=UniqueConstraint(fields=('client', 'request_key'), name=None),
        ),
        ops.AlterField(
            model_name='MeasureAdministration',
            name='request_key',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddConstraint(
            model_name='MeasureAdministration',
            constraint=UniqueConstraint(fields=('client', 'request_key'), name=None),
        ),
        ops.AlterField(
            model_name='NoteAddendum',
            name='request_key',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddConstraint(
            model_name='NoteAddendum',
            constraint=UniqueConstraint(fields=('note', 'request_key'), name=None),
        ),
        ops.AlterField(
            model_name='Payment',
            name='request_key',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddConstraint(
            model_name='Payment',
            constraint=UniqueConstraint(fields=('practice', 'request_key'), name=None),
        ),
    ]
