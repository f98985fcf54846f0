from tortoise import migrations
from tortoise.migrations import operations as ops
from models.offers import SlotStatus
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0024_request_keys_scoped')]

    initial = False

    # SlotStatus.CLOSED (a freed slot inside time off, reopened if the time off goes): the
    # column's description only; the values fit the column as it is.

    operations = [
        ops.AlterField(
            model_name='FreedSlot',
            name='status',
            field=fields.CharEnumField(default=SlotStatus.WAITING, description='WAITING: waiting\nOFFERED: offered\nUNMATCHED: unmatched\nTAKEN: taken\nCLOSED: closed', enum_type=SlotStatus, max_length=10),
        ),
    ]
