from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0017_measures_followup')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Appointment',
            name='moved_from',
            field=fields.ForeignKeyField('models.Appointment', source_field='moved_from_id', null=True, db_constraint=True, to_field='id', related_name='moved_to', on_delete=OnDelete.SET_NULL),
        ),
    ]
